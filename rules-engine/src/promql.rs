//! The native PromQL engine, with Prometheus 2.42's semantics, on `promql-parser`'s AST.
//!
//! Evaluation runs in named stages, as STYLE.md item 6 asks:
//!
//! 1. **plan** (`plan`): one pass over the AST collects every selector with the time window
//!    it needs (offset, `@`, lookback, enclosing subqueries), and storage is queried once per
//!    selector.
//! 2. **eval** (`eval`): a pure, in-memory evaluation over the prefetched series. Like
//!    Prometheus's `evaluator`, every non-string expression evaluates to a step-aligned matrix
//!    over `[start, end]` (one step for instant queries); subqueries run a nested evaluator with
//!    their own aligned steps.
//! 3. stages inside eval: select (`eval`), window and kernel ([`functions`]), vector matching
//!    (`binary`) and aggregation (`aggregate`).
//!
//! The engine never reads the clock: evaluation time is an argument, and an optional
//! [`StopCheck`] callback (checked on every step) is how a caller imposes a deadline or cancels.

mod aggregate;
mod binary;
mod eval;
pub mod functions;
mod invariant;
mod offsets;
mod parse;
mod plan;

use std::sync::Arc;
use std::time::Duration;

pub use parse::parse_expr;
use promql_parser::parser::Expr;
use promql_parser::parser::value::ValueType;

use crate::model::{Labels, Sample, Timestamp};
use crate::storage::{Queryable, Series, StorageError};

/// Limits applied while evaluating one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvalLimits {
    /// The most samples one evaluation stage may hold (Prometheus `--query.max-samples`).
    pub max_samples: usize,
    /// How far back an instant selector looks for a sample (Prometheus default 5m).
    pub lookback_delta: Duration,
    /// The step of a subquery written without one (`[5m:]`); Prometheus uses the global
    /// evaluation interval, promtool the test file's `evaluation_interval`.
    pub default_subquery_step: Duration,
}

impl Default for EvalLimits {
    fn default() -> Self {
        Self {
            max_samples: 50_000_000,
            lookback_delta: Duration::from_secs(300),
            default_subquery_step: Duration::from_secs(60),
        }
    }
}

/// Why a [`StopCheck`] asks evaluation to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Canceled,
    Timeout,
}

/// Checked on every evaluation step; returning `Some` aborts the query. The caller owns any
/// clock (for example a deadline checked against `tokio::time::Instant`).
pub type StopCheck = Arc<dyn Fn() -> Option<Stop> + Send + Sync>;

/// Query failures, with Prometheus's messages.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The query text does not parse (or uses what Prometheus 2.42 does not have).
    #[error("{0}")]
    Parse(String),
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    #[error("query timed out in expression evaluation")]
    Timeout,
    #[error("query was canceled in expression evaluation")]
    Canceled,
    #[error("expanding series: {0}")]
    Storage(#[source] StorageError),
    /// A runtime error of the expression itself (vector matching, bad function argument...).
    #[error("{0}")]
    Execution(String),
}

impl EvalError {
    pub(crate) fn exec(msg: impl Into<String>) -> Self {
        Self::Execution(msg.into())
    }
}

/// A sample of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorSample {
    pub labels: Labels,
    pub t: Timestamp,
    pub v: f64,
}

/// A query result.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Scalar(Sample),
    String { t: Timestamp, v: String },
    Vector(Vec<VectorSample>),
    Matrix(Vec<Series>),
}

/// The PromQL engine: limits plus an optional stop check. Cheap to clone.
#[derive(Clone, Default)]
pub struct Engine {
    limits: EvalLimits,
    stop: Option<StopCheck>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("limits", &self.limits)
            .field("stop", &self.stop.is_some())
            .finish()
    }
}

impl Engine {
    pub fn new(limits: EvalLimits) -> Self {
        Self { limits, stop: None }
    }

    /// Adds a check run on every step (cancellation, deadlines).
    pub fn with_stop_check(mut self, stop: StopCheck) -> Self {
        self.stop = Some(stop);
        self
    }

    pub fn limits(&self) -> &EvalLimits {
        &self.limits
    }

    /// Evaluates `expr` at `ts`. Vector expressions give [`Value::Vector`] (samples stamped
    /// `ts`), scalar ones [`Value::Scalar`], range selectors and subqueries [`Value::Matrix`].
    pub fn instant(
        &self,
        q: &dyn Queryable,
        expr: &Expr,
        ts: Timestamp,
    ) -> Result<Value, EvalError> {
        let t = ts.millis();
        let out = self.run(q, expr, t, t, 1)?;
        Ok(match (out, expr.value_type()) {
            (eval::Inner::Str(s), _) => Value::String { t: ts, v: s },
            (eval::Inner::Matrix(m), ValueType::Scalar) => {
                let v = m
                    .first()
                    .and_then(|s| s.samples.first())
                    .map_or(f64::NAN, |s| s.v);
                Value::Scalar(Sample { t: ts, v })
            }
            (eval::Inner::Matrix(m), ValueType::Matrix) => Value::Matrix(m),
            (eval::Inner::Matrix(m), _) => Value::Vector(
                m.into_iter()
                    .filter_map(|s| {
                        let v = s.samples.first()?.v;
                        Some(VectorSample {
                            labels: s.labels,
                            t: ts,
                            v,
                        })
                    })
                    .collect(),
            ),
        })
    }

    /// Parses `query` ([`parse_expr`]) and evaluates it at `ts` ([`Engine::instant`]).
    pub fn instant_query(
        &self,
        q: &dyn Queryable,
        query: &str,
        ts: Timestamp,
    ) -> Result<Value, EvalError> {
        self.instant(q, &parse_expr(query)?, ts)
    }

    /// Evaluates `expr` at every step from `start` to `end` (inclusive); the result is a
    /// matrix sorted by labels, as Prometheus returns it.
    pub fn range(
        &self,
        q: &dyn Queryable,
        expr: &Expr,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> Result<Value, EvalError> {
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            other => {
                return Err(EvalError::Parse(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    type_name(other)
                )));
            }
        }
        let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1);
        match self.run(q, expr, start.millis(), end.millis(), step_ms)? {
            eval::Inner::Matrix(mut m) => {
                // Prometheus sorts range results by labels.
                m.sort_by(|a, b| a.labels.cmp(&b.labels));
                Ok(Value::Matrix(m))
            }
            eval::Inner::Str(s) => Ok(Value::String { t: start, v: s }),
        }
    }

    fn run(
        &self,
        q: &dyn Queryable,
        expr: &Expr,
        start: i64,
        end: i64,
        interval: i64,
    ) -> Result<eval::Inner, EvalError> {
        let lookback = duration_ms(self.limits.lookback_delta);
        let data = plan::prefetch(q, expr, start, end, lookback)?;
        let wrapped = invariant::wrapped_nodes(expr);
        let current = std::cell::Cell::new(0);
        let offsets = offsets::Offsets::new(start, end);
        offsets.apply(start, expr);
        let ev = eval::Evaluator::new(
            &data,
            eval::Settings {
                current: &current,
                offsets: &offsets,
                wrapped: &wrapped,
                lookback,
                subquery_step: duration_ms(self.limits.default_subquery_step).max(1),
                max_samples: self.limits.max_samples,
                stop: self.stop.as_ref(),
            },
            start,
            end,
            interval,
        );
        ev.eval_top(expr)
    }
}

pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Prometheus's name of a value type, as used in its error messages.
pub(crate) fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemStorage;

    fn store() -> MemStorage {
        let st = MemStorage::new();
        for job in ["a", "b"] {
            let l = Labels::from_pairs([("__name__", "up"), ("job", job)]).unwrap();
            st.add(l, (0..10).map(|i| Sample::new(i * 60_000, i as f64)));
        }
        st
    }

    #[test]
    fn range_query_is_sorted_and_stepped() {
        let st = store();
        let e = parse_expr("sum by (job) (up)").unwrap();
        let v = Engine::default()
            .range(
                &st,
                &e,
                Timestamp(60_000),
                Timestamp(180_000),
                Duration::from_secs(60),
            )
            .unwrap();
        let Value::Matrix(m) = v else { panic!("{v:?}") };
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].labels.get("job"), Some("a"));
        let ts: Vec<i64> = m[0].samples.iter().map(|s| s.t.0).collect();
        assert_eq!(ts, vec![60_000, 120_000, 180_000]);
        assert!(
            Engine::default()
                .range(
                    &st,
                    &parse_expr("up[5m]").unwrap(),
                    Timestamp(0),
                    Timestamp(1),
                    Duration::from_secs(1)
                )
                .is_err()
        );
    }

    #[test]
    fn limits_and_stop_checks_abort() {
        let st = store();
        let small = Engine::new(EvalLimits {
            max_samples: 3,
            ..EvalLimits::default()
        });
        let err = small
            .instant_query(&st, "count_over_time(up[10m])", Timestamp(540_000))
            .unwrap_err();
        assert!(matches!(err, EvalError::TooManySamples), "{err}");
        let stop: StopCheck = Arc::new(|| Some(Stop::Canceled));
        let err = Engine::default()
            .with_stop_check(stop)
            .instant_query(&st, "up", Timestamp(0))
            .unwrap_err();
        assert!(matches!(err, EvalError::Canceled), "{err}");
        let v = Engine::default()
            .instant_query(&st, "scalar(sum(up))", Timestamp(120_000))
            .unwrap();
        assert_eq!(v, Value::Scalar(Sample::new(120_000, 4.0)));
    }
}
