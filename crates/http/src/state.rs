//! What every handler can reach.

use metrics_exporter_prometheus::PrometheusHandle;
use specgen_app::App;

#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub metrics: PrometheusHandle,
}
