import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as v from '../../app/js/lib/validate.js';

test('email: required, valid shape with a dotted domain, at most 254 characters', () => {
  assert.equal(v.email(' Ada@Example.COM '), null);
  for (const bad of ['', 'plain', 'a@', '@b.c', 'a@b', 'a b@c.d']) assert.ok(v.email(bad), bad);
  assert.match(v.email(`${'a'.repeat(250)}@x.io`), /254/);
});

test('password: 8..128 with lower, upper and digit; the checklist says which rule fails', () => {
  assert.equal(v.password('Abcdefg1'), null);
  assert.match(v.password('Abc1'), /at least 8/);
  assert.match(v.password('abcdefg1'), /uppercase/);
  assert.match(v.password('ABCDEFG1'), /lowercase/);
  assert.match(v.password('Abcdefgh'), /digit/);
  assert.match(v.password('abcdefgh'), /uppercase letter and a digit/);
  assert.match(v.password(`A1${'a'.repeat(127)}`), /at most 128/);
  const rules = v.passwordRules('abc');
  assert.deepEqual(rules.map((r) => [r.id, r.ok]), [['length', false], ['lower', true], ['upper', false], ['digit', false]]);
  // Lengths count characters, not UTF-16 units: 8 emoji-free accented letters pass.
  assert.equal(v.password('Éléphant9'), null);
});

test('names: 2..50 characters after trimming', () => {
  assert.match(v.name(' a '), /at least 2/);
  assert.equal(v.name(' ab '), null);
  assert.equal(v.name('x'.repeat(50)), null);
  assert.match(v.name('x'.repeat(51)), /at most 50/);
  assert.match(v.name('😀', 'Display name'), /^Display name/);
  assert.equal(v.name('😀😀'), null);
});

test('message content: 1..10,000 characters after trimming, no control characters but \\n \\r \\t', () => {
  assert.match(v.messageContent('   \n '), /Type a message/);
  assert.equal(v.messageContent('a < b\n\t<div>'), null);
  assert.equal(v.messageContent(` ${'x'.repeat(10000)} `), null);
  assert.match(v.messageContent('x'.repeat(10001)), /at most 10,000/);
  assert.match(v.messageContent('bell\u0007'), /control character/);
  assert.match(v.messageContent('nul\u0000'), /control character/);
});

test('bio, title, system prompt and time zone bounds', () => {
  assert.equal(v.bio('x'.repeat(500)), null);
  assert.match(v.bio('x'.repeat(501)), /at most 500/);
  assert.match(v.title('  '), /at least 1/);
  assert.match(v.title('t'.repeat(201)), /at most 200/);
  assert.equal(v.systemPrompt('p'.repeat(8000)), null);
  assert.ok(v.systemPrompt('p'.repeat(8001)));
  assert.equal(v.timezone('Europe/Paris'), null);
  assert.equal(v.timezone('UTC'), null);
  assert.ok(v.timezone('Mars/Olympus'));
  assert.ok(v.timezone(''));
});

test('server 422 details map onto form fields; unknown fields are kept for the form', () => {
  const errs = v.fieldErrors([
    { field: 'email', message: 'email must be a valid address' },
    { field: 'password', message: 'too common' },
    { field: 'body', message: 'expected an object' },
  ], ['email', 'password', 'name']);
  assert.deepEqual(errs, { email: 'email must be a valid address', password: 'too common', _form: 'expected an object' });
});

test('check runs every rule of a form', () => {
  const errs = v.check({ email: v.email, password: v.password, name: v.name }, { email: 'a@b.co', password: 'weak', name: 'Al' });
  assert.deepEqual(Object.keys(errs), ['password']);
});
