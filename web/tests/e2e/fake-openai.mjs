// A stand-in OpenAI-compatible upstream for the e2e run: it streams the
// first words of an answer, then drops the connection. The server must end
// such a reply as `failed` (never silently switch providers after the first
// token), which lets the e2e check that the client says why and offers a
// retry. Usage: node fake-openai.mjs PORT
import http from 'node:http';

const port = Number(process.argv[2] ?? 18099);
http.createServer((req, res) => {
  if (req.method !== 'POST' || !req.url.endsWith('/chat/completions')) {
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end('{"error":{"message":"not found"}}');
    return;
  }
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    const chunk = (content) => `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 0, model: 'fake-model', choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`;
    res.write(chunk('The first words '));
    res.write(chunk('of an answer'));
    // Then the line goes dead mid-answer.
    setTimeout(() => res.socket.destroy(), 150);
  });
}).listen(port, '127.0.0.1', () => console.log(`fake upstream on ${port}`));
