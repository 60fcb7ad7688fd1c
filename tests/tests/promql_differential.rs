//! promgate's Prometheus query API against a real Prometheus 2.42, on the same data.
//!
//! A trading-stack data set ([`e2e::trading`]: counters with resets, gauges, classic
//! histograms, series ending with stale markers, series starting late, about 400 series at 15s
//! over the last 55 minutes, inside Prometheus's head window) is remote-written as the same
//! bytes into a fresh promgate and a fresh Prometheus. Then every call below goes to both HTTP
//! APIs, and the answers must agree ([`e2e::diff`]): same status and `errorType` for queries
//! that must fail, otherwise the same result type, label sets, timestamps, values within 1e-9
//! relative, and the same order where PromQL defines one. Instant queries run at five times
//! (near the end, mid-window among stale series, with a sample exactly on the left edge of the
//! 5m windows, at a millisecond fraction, and 4m past the data); range queries over the window at a 60s step,
//! plus a few at other steps (15s, 7.5s, 37s, 1m30s, and exactly 11,000 steps). Every fifth
//! query call is also sent as a POST form, as Grafana sends them. The metadata endpoints
//! (`series`, `labels`, `label/<name>/values`, the first two also as POST) must list the same
//! entries, `status/buildinfo` must have at least Prometheus's keys, and `status/tsdb` the same
//! head series count, time bounds and top-10 cardinality lists. Answers must have the
//! same JSON shape (keys of the envelope, `data` and result entries). Error messages may
//! differ (they are printed, not compared): the status and `errorType` are the contract.
//!
//! Known divergences are left out of the lists, each with a comment saying why: range-limited
//! `labels` and `label/<name>/values` (see [`meta_calls`]); promgate's `buildinfo` also has
//! `application` and `promgateVersion`.
//!
//! Every failure is collected and reported together, each with the call, Prometheus's answer
//! and promgate's.

use std::collections::BTreeSet;

use e2e::diff::{self, Answer, Call, Order};
use e2e::http::{ms_to_secs, post_rw_v1};
use e2e::trading::Dataset;
use e2e::{Prometheus, Promgate, now_ms};

/// How much history the data set covers: inside Prometheus's head appendable window (samples
/// older than the head's newest minus 1h are out of bounds).
const SPAN_MS: i64 = 55 * 60_000;

/// One comparison.
struct Case {
    call: Call,
    order: Order,
    /// Prometheus must answer with an error (so the case tests an error path, not a typo).
    must_fail: bool,
}

/// The times the queries use, from the data set's bounds.
struct Times {
    /// Start of the data set.
    s: i64,
    /// Last sample time bound.
    e: i64,
    /// Instant-query time near the end.
    at: i64,
    /// Mid-window instant: after `orders_total{venue="kraken",symbol="DOGEUSDT"}` went stale,
    /// inside the stale gap of `position_notional_usd{venue="coinbase",symbol="ADAUSDT"}`.
    mid: i64,
    /// Exactly 5m after a sample of instance 0: that sample sits on the left edge of every
    /// `[5m]` range and of the lookback window.
    edge: i64,
    /// A time with a millisecond fraction, between scrapes.
    frac: i64,
    /// After the end of the data, inside the 5m lookback.
    after: i64,
}

/// Instant queries (at `t.at`, `t.mid`, `t.edge`, `t.frac`, `t.after`), range queries over the window at a 60s
/// step, or both.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Instant,
    Range,
    Both,
}

fn cases(t: &Times) -> Vec<Case> {
    use Kind::*;
    let secs = |ms: i64| ms_to_secs(ms);
    let at20m = secs(t.s + 20 * 60_000);
    // (query, kind, order)
    let mut list: Vec<(String, Kind, Order)> = Vec::new();
    let mut add = |q: &str, k: Kind| list.push((q.to_string(), k, Order::Any));
    // Selectors and raw samples.
    add("orders_total", Both);
    add(r#"orders_total{venue="kraken"}[5m]"#, Instant);
    add(
        r#"order_latency_seconds_bucket{venue="okx",order_type="limit",le=~"0.0.*"}"#,
        Both,
    );
    add(r#"{__name__=~"trading_.*|venue_info"}"#, Both);
    add("maintenance_window", Both);
    add(r#"trading_ws_connection_status{venue="okx"}"#, Both);
    // Counter functions over resets.
    add("rate(orders_total[5m])", Both);
    add("irate(orders_total[5m])", Both);
    add("increase(orders_total[10m])", Both);
    add("resets(orders_total[30m])", Both);
    add("increase(order_latency_seconds_count[1h])", Both);
    add("rate(order_errors_total[2m])", Both);
    // Gauge functions.
    add("delta(cryptofunk_current_drawdown[10m])", Both);
    add("idelta(position_notional_usd[5m])", Both);
    add("changes(trading_ws_connection_status[30m])", Both);
    add("deriv(cryptofunk_current_drawdown[10m])", Both);
    add("predict_linear(position_notional_usd[15m], 600)", Both);
    add(
        "holt_winters(cryptofunk_current_drawdown[10m], 0.3, 0.7)",
        Both,
    );
    // Histograms.
    add(
        "histogram_quantile(0.99, sum by (le) (rate(order_latency_seconds_bucket[5m])))",
        Both,
    );
    add(
        "histogram_quantile(0.5, sum by (venue, le) (rate(order_latency_seconds_bucket[5m])))",
        Both,
    );
    add(
        "histogram_quantile(0.9, rate(order_latency_seconds_bucket[5m]))",
        Both,
    );
    add(
        "rate(order_latency_seconds_sum[5m]) / rate(order_latency_seconds_count[5m])",
        Both,
    );
    // Aggregations, by and without.
    add("sum by (venue) (rate(orders_total[5m]))", Both);
    add(
        "sum without (instance, side) (rate(orders_total[5m]))",
        Both,
    );
    add("sum(orders_total) by (venue, side)", Both);
    add("avg by (venue) (position_notional_usd)", Both);
    add("min without (symbol) (position_notional_usd)", Both);
    add("max by (symbol) (position_notional_usd)", Both);
    add("count by (venue) (orders_total)", Both);
    add("group by (venue, side) (orders_total)", Both);
    add("stddev by (venue) (position_notional_usd)", Both);
    add(
        "stdvar without (instance) (cryptofunk_current_drawdown)",
        Both,
    );
    add("topk by (venue) (2, rate(orders_total[5m]))", Both);
    add("topk(3, sum by (symbol) (rate(orders_total[5m])))", Range);
    add("bottomk without (side) (1, orders_total)", Both);
    add("quantile(0.9, position_notional_usd)", Both);
    add("quantile by (venue) (0.25, position_notional_usd)", Both);
    add(
        r#"count_values("status", trading_ws_connection_status)"#,
        Both,
    );
    add(
        r#"count_values by (venue) ("v", trading_ws_connection_status)"#,
        Both,
    );
    // Vector matching.
    add(
        "orders_total * on (venue) group_left (region, tier) venue_info",
        Both,
    );
    add(
        "venue_info * on (venue) group_right (region) sum by (venue, symbol) (rate(orders_total[5m]))",
        Both,
    );
    add(
        r#"rate(orders_total{side="buy"}[5m]) / ignoring (side) rate(orders_total{side="sell"}[5m])"#,
        Both,
    );
    add(
        "sum by (venue) (rate(order_errors_total[5m])) / on (venue) sum by (venue) (rate(orders_total[5m]))",
        Both,
    );
    add(
        "sum by (venue, instance) (orders_total) - on (venue) group_left sum by (venue) (orders_total)",
        Both,
    );
    // Comparisons, with and without bool.
    add("rate(orders_total[5m]) > 0.5", Both);
    add("rate(orders_total[5m]) > bool 0.5", Both);
    add("cryptofunk_current_drawdown >= 0.1", Both);
    add("trading_ws_connection_status == 0", Both);
    add("trading_ws_connection_status != bool 1", Both);
    add("1 < bool 2", Both);
    add("0.1 < cryptofunk_current_drawdown", Both);
    // Set operators.
    add(
        r#"orders_total{venue="binance"} and orders_total{side="buy"}"#,
        Both,
    );
    add(
        r#"orders_total{venue="binance"} or orders_total{symbol="BTCUSDT"}"#,
        Both,
    );
    add(
        "orders_total unless on (venue, instance) (trading_ws_connection_status == 0)",
        Both,
    );
    add(
        "max_over_time(cryptofunk_current_drawdown[15m]) > 0.1 or vector(0)",
        Both,
    );
    // offset and @.
    add("orders_total offset 10m", Both);
    add("rate(orders_total[5m] offset -5m)", Both);
    add("orders_total offset -1m", Both);
    add("cryptofunk_current_drawdown @ start()", Range);
    add("rate(orders_total[5m] @ end())", Both);
    add(&format!("cryptofunk_current_drawdown @ {at20m}"), Both);
    add(
        &format!("sum(rate(orders_total[5m] @ {at20m} offset 1m))"),
        Both,
    );
    // Subqueries.
    add("max_over_time(rate(orders_total[5m])[30m:1m])", Both);
    add(
        "avg_over_time(sum by (venue) (position_notional_usd)[10m:30s])",
        Both,
    );
    add("rate(orders_total[5m])[10m:2m]", Instant);
    // *_over_time.
    add(
        "max_over_time(cryptofunk_current_drawdown[15m]) > 0.1",
        Both,
    );
    add("avg_over_time(position_notional_usd[10m])", Both);
    add("min_over_time(position_notional_usd[10m])", Both);
    add("sum_over_time(trading_ws_connection_status[10m])", Both);
    add("count_over_time(orders_total[10m])", Both);
    add("stddev_over_time(cryptofunk_current_drawdown[10m])", Both);
    add("stdvar_over_time(position_notional_usd[10m])", Both);
    add("last_over_time(orders_total[10m])", Both);
    add("present_over_time(trading_ws_connection_status[5m])", Both);
    add(
        "quantile_over_time(0.9, cryptofunk_current_drawdown[20m])",
        Both,
    );
    // absent.
    add(r#"absent(orders_total{venue="nope"})"#, Both);
    add("absent(orders_total)", Both);
    add(
        r#"absent_over_time(trading_ws_connection_status{venue="okx",stream="user"}[5m])"#,
        Both,
    );
    add(r#"absent(nonexistent{job="x", a=~"b"})"#, Both);
    // Label functions.
    add(
        r#"label_replace(rate(orders_total[5m]), "pair", "$1-$2", "symbol", "(.*)(USDT)")"#,
        Both,
    );
    add(
        r#"label_join(trading_ws_connection_status, "id", "/", "venue", "stream")"#,
        Both,
    );
    // Math and clamping.
    add("clamp(position_notional_usd, -1000, 1000)", Both);
    add("clamp_min(cryptofunk_current_drawdown, 0.1)", Both);
    add("clamp_max(cryptofunk_current_drawdown, 0.1)", Both);
    add(
        "abs(position_notional_usd) + ceil(cryptofunk_current_drawdown) - floor(cryptofunk_current_drawdown)",
        Both,
    );
    add("round(position_notional_usd, 0.5)", Both);
    add(
        "ln(cryptofunk_current_drawdown) + log2(cryptofunk_current_drawdown) + exp(cryptofunk_current_drawdown)",
        Both,
    );
    add("sqrt(position_notional_usd)", Both);
    add(
        "sgn(position_notional_usd) * -position_notional_usd % 7",
        Both,
    );
    add("2 ^ cryptofunk_current_drawdown", Both);
    add("cryptofunk_current_drawdown atan2 0.1", Both);
    // Time functions, scalar and vector.
    add("time()", Both);
    add("timestamp(cryptofunk_current_drawdown)", Both);
    add(
        "hour() + minute() + day_of_week() + day_of_month() + month() + year()",
        Both,
    );
    add("days_in_month(vector(time()))", Both);
    add("minute(timestamp(cryptofunk_current_drawdown))", Both);
    add("scalar(sum(trading_ws_connection_status))", Both);
    add("scalar(orders_total)", Both);
    add("vector(1) + 2", Both);
    add(r#""a string""#, Instant);
    add("-1.5e3", Both);
    // Matchers, names and literals.
    add(
        r#"orders_total{venue=~"bin.*|okx", side!="buy", symbol!~"BTC.*"}"#,
        Both,
    );
    add(r#"orders_total{symbol=~"BTC"}"#, Both);
    add(r#"orders_total{symbol=~"(?i)btcusdt"}"#, Both);
    add(r#"orders_total{nonexistent=""}"#, Both);
    add(r#"orders_total{nonexistent!=""}"#, Both);
    add(r#"rate({__name__=~"order.*_total"}[5m])"#, Both);
    add(
        r#"sum by (__name__) ({__name__=~"order_latency_seconds_(sum|count)"})"#,
        Both,
    );
    add("orders_total / orders_total", Both);
    add("NaN", Both);
    add("-Inf", Both);
    add("0x10 + 1e3", Both);
    // Edge cases of functions and aggregations.
    add("rate(orders_total[30s])", Both);
    add("rate(orders_total[20s])", Both);
    add("deriv(orders_total[5m])", Both);
    add("resets(trading_ws_connection_status[30m])", Both);
    add(
        r#"histogram_quantile(0.5, order_latency_seconds_bucket{le!="+Inf"})"#,
        Both,
    );
    add(
        "histogram_quantile(1.5, rate(order_latency_seconds_bucket[5m]))",
        Both,
    );
    add("quantile(1.5, position_notional_usd)", Both);
    add("quantile(-1, position_notional_usd)", Both);
    add("topk(0, orders_total)", Both);
    add("topk(2.7, sum by (venue) (orders_total))", Both);
    add(
        r#"count_values("v", round(cryptofunk_current_drawdown, 0.001))"#,
        Both,
    );
    add(r#"count_values("v", position_notional_usd / 1e9)"#, Both);
    add(
        r#"label_replace(venue_info, "r", "$1", "region", "(.*)-1")"#,
        Both,
    );
    add(
        r#"label_replace(venue_info, "r", "x$1y", "region", "nomatch(.*)")"#,
        Both,
    );
    add(
        r#"label_join(orders_total{venue="okx"}, "pair", "", "symbol", "side")"#,
        Both,
    );
    add("absent(sum(nonexistent))", Both);
    add("scalar(vector(2)) * cryptofunk_current_drawdown", Both);
    add("timestamp(cryptofunk_current_drawdown offset 1m)", Both);
    add(
        "sum_over_time(rate(orders_total[1m])[5m:15s] offset 2m)",
        Both,
    );
    add("max_over_time(rate(orders_total[5m])[10m:])", Both);
    add(
        &format!("max_over_time(sum(rate(orders_total[5m]))[10m:1m] @ {at20m})"),
        Both,
    );
    add(
        "predict_linear(cryptofunk_current_drawdown[10m] @ end(), 3600)",
        Both,
    );
    add("histogram_count(order_latency_seconds_count)", Both);
    add("histogram_sum(order_latency_seconds_sum)", Both);
    add(
        "histogram_fraction(0, 0.1, order_latency_seconds_bucket)",
        Both,
    );
    // NaN values (not stale markers) in the data.
    for q in [
        "order_fill_ratio",
        "max_over_time(order_fill_ratio[5m])",
        "min_over_time(order_fill_ratio[5m])",
        "avg_over_time(order_fill_ratio[5m])",
        "sum_over_time(order_fill_ratio[5m])",
        "stddev_over_time(order_fill_ratio[5m])",
        "quantile_over_time(0.5, order_fill_ratio[10m])",
        "last_over_time(order_fill_ratio[1m])",
        "sum(order_fill_ratio)",
        "max(order_fill_ratio)",
        "min(order_fill_ratio)",
        "avg(order_fill_ratio)",
        "stddev(order_fill_ratio)",
        "quantile(0.5, order_fill_ratio)",
        "topk(2, order_fill_ratio)",
        "bottomk(2, order_fill_ratio)",
        r#"count_values("v", order_fill_ratio)"#,
        "order_fill_ratio > 0.5",
        "order_fill_ratio == bool order_fill_ratio",
        "clamp(order_fill_ratio, 0.2, 0.8)",
        "deriv(order_fill_ratio[5m])",
        "rate(order_fill_ratio[5m])",
        "delta(order_fill_ratio[5m])",
        "changes(order_fill_ratio[10m])",
        "resets(order_fill_ratio[10m])",
        "predict_linear(order_fill_ratio[10m], 60)",
        "holt_winters(order_fill_ratio[10m], 0.5, 0.5)",
        "order_fill_ratio * on (venue) group_left (region) venue_info",
        "scalar(order_fill_ratio{venue=\"okx\"})",
        "timestamp(order_fill_ratio)",
    ] {
        add(q, Both);
    }
    // Label values JSON and regexes must escape or decode.
    for q in [
        "symbol_alias_info",
        r#"symbol_alias_info{city=~"東.*|Z.rich"}"#,
        r#"symbol_alias_info{alias="BTC/USDT"}"#,
        r#"symbol_alias_info{note=~".*\\n.*"}"#,
        r#"symbol_alias_info{note=~".*\".*"}"#,
        r#"label_replace(symbol_alias_info, "first", "$1", "city", "(.).*")"#,
        r#"label_join(symbol_alias_info, "all", "|", "alias", "note", "city")"#,
        r#"count_values("c", symbol_alias_info) * 0"#,
        r#"sum by (city) (symbol_alias_info)"#,
    ] {
        add(q, Both);
    }
    let mut ordered = |q: &str| list.push((q.to_string(), Instant, Order::Defined));
    ordered("sort(order_fill_ratio)");
    ordered("sort_desc(order_fill_ratio)");
    ordered("topk(3, order_fill_ratio)");
    ordered("bottomk(3, order_fill_ratio)");
    ordered("sort(rate(orders_total[5m]))");
    ordered("sort_desc(rate(orders_total[5m]))");
    ordered("topk(5, rate(orders_total[5m]))");
    ordered("bottomk(3, position_notional_usd)");
    ordered("sort_desc(sum by (venue) (position_notional_usd))");

    let mut out = Vec::new();
    for (query, kind, order) in list {
        if kind != Range {
            for time_ms in [t.at, t.mid, t.edge, t.frac, t.after] {
                out.push(Case {
                    call: Call::Instant {
                        query: query.clone(),
                        time_ms,
                    },
                    order,
                    must_fail: false,
                });
            }
        }
        if kind != Instant {
            out.push(Case {
                call: Call::Range {
                    query: query.clone(),
                    start_ms: t.s + 6 * 60_000,
                    end_ms: t.e,
                    step: "60".to_string(),
                },
                order: Order::Any,
                must_fail: false,
            });
        }
    }
    // A few range queries at other steps: the scrape interval, an unaligned step, a duration.
    for (q, step, from) in [
        ("sum by (venue) (orders_total)", "30", t.s - 10 * 60_000),
        ("maintenance_window", "60", t.s),
        ("rate(orders_total[1m])", "15s", t.e - 15 * 60_000),
        ("trading_ws_connection_status", "15", t.s),
        (
            "histogram_quantile(0.99, sum by (le) (rate(order_latency_seconds_bucket[5m])))",
            "37",
            t.s,
        ),
        ("position_notional_usd", "1m30s", t.s),
        ("rate(orders_total[1m])", "7.5", t.e - 5 * 60_000 + 333),
        // Exactly 11,000 steps: allowed (11,001 points per series).
        (r#"cryptofunk_current_drawdown{strategy="arb"}"#, "0.3", t.s),
    ] {
        out.push(Case {
            call: Call::Range {
                query: q.to_string(),
                start_ms: from,
                end_ms: t.e,
                step: step.to_string(),
            },
            order: Order::Any,
            must_fail: false,
        });
    }
    // Past the end of the data: the lookback keeps the last samples for 5 minutes.
    for q in [
        "sum by (venue) (rate(orders_total[5m]))",
        "trading_ws_connection_status",
        "timestamp(cryptofunk_current_drawdown)",
        "absent(venue_info)",
    ] {
        out.push(Case {
            call: Call::Range {
                query: q.to_string(),
                start_ms: t.e - 10 * 60_000,
                end_ms: t.e + 10 * 60_000,
                step: "20".to_string(),
            },
            order: Order::Any,
            must_fail: false,
        });
    }
    // Degenerate ranges: start = end, and a step longer than the range.
    for (start_ms, end_ms, step) in [(t.at, t.at, "60"), (t.at - 60_000, t.at, "3600")] {
        out.push(Case {
            call: Call::Range {
                query: "sum by (venue) (rate(orders_total[5m]))".to_string(),
                start_ms,
                end_ms,
                step: step.to_string(),
            },
            order: Order::Any,
            must_fail: false,
        });
    }
    // Queries that must fail, with the same status and errorType.
    let fail_instant = [
        "orders_total + on (venue) orders_total",
        "orders_total * on (venue) venue_info",
        "sum(rate(orders_total[5m])",
        "rate(cryptofunk_current_drawdown)",
        r#"label_replace(orders_total, "side", "", "side", ".*")"#,
        r#"count_values("invalid-name", trading_ws_connection_status)"#,
        "orders_total[5m] offset",
        r#"topk("a", orders_total)"#,
        "",
        "-orders_total[5m]",
        r#"{venue="binance"} offset 1m @ 0 offset 2m"#,
        r#"{nonexistent=""}"#,
        // Functions and syntax Prometheus 2.42 does not have yet.
        r#"sort_by_label(orders_total, "venue")"#,
        "limitk(2, orders_total)",
        "mad_over_time(cryptofunk_current_drawdown[10m])",
        "double_exponential_smoothing(cryptofunk_current_drawdown[10m], 0.3, 0.7)",
        "rate(orders_total[5m+1m])",
    ];
    for q in fail_instant {
        out.push(Case {
            call: Call::Instant {
                query: q.to_string(),
                time_ms: t.at,
            },
            order: Order::Any,
            must_fail: true,
        });
    }
    for (q, step) in [
        ("orders_total[5m]", "60"),
        ("rate(orders_total[5m])[10m:1m]", "60"),
        ("orders_total", "0.1"),
        // Just over 11,000 steps.
        (r#"cryptofunk_current_drawdown{strategy="arb"}"#, "0.299"),
        ("orders_total", "0"),
        ("orders_total", "-15"),
        ("orders_total + on (venue) orders_total", "60"),
    ] {
        out.push(Case {
            call: Call::Range {
                query: q.to_string(),
                start_ms: t.s,
                end_ms: t.e,
                step: step.to_string(),
            },
            order: Order::Any,
            must_fail: true,
        });
    }
    out.push(Case {
        call: Call::Range {
            query: "orders_total".to_string(),
            start_ms: t.e,
            end_ms: t.s,
            step: "60".to_string(),
        },
        order: Order::Any,
        must_fail: true,
    });
    out
}

/// Metadata calls: series, label names, label values, with and without match[] and a range.
fn meta_calls(t: &Times) -> Vec<Call> {
    let last5m = || {
        vec![
            ("start", ms_to_secs(t.e - 5 * 60_000)),
            ("end", ms_to_secs(t.e)),
        ]
    };
    let get = |path: &str, matches: &[&str], range: Vec<(&str, String)>| Call::Get {
        path: path.to_string(),
        pairs: matches
            .iter()
            .map(|m| ("match[]".to_string(), m.to_string()))
            .chain(range.into_iter().map(|(k, v)| (k.to_string(), v)))
            .collect(),
    };
    vec![
        get(
            "/api/v1/series",
            &[r#"orders_total{venue="kraken"}"#],
            vec![],
        ),
        get(
            "/api/v1/series",
            &[r#"orders_total{venue="kraken"}"#],
            last5m(),
        ),
        get(
            "/api/v1/series",
            &["trading_ws_connection_status", "venue_info"],
            last5m(),
        ),
        get(
            "/api/v1/series",
            &[r#"{__name__=~"order_latency_seconds_.*",le=~"\\+Inf|"}"#],
            vec![],
        ),
        get("/api/v1/series", &[], vec![]),
        get("/api/v1/series", &["rate(x[5m])"], vec![]),
        get("/api/v1/labels", &[], vec![]),
        get("/api/v1/labels", &["venue_info"], vec![]),
        get(
            "/api/v1/labels",
            &["cryptofunk_current_drawdown", "venue_info"],
            last5m(),
        ),
        get("/api/v1/label/venue/values", &[], vec![]),
        get("/api/v1/label/__name__/values", &[], vec![]),
        get(
            "/api/v1/label/le/values",
            &[r#"order_latency_seconds_bucket{venue="binance"}"#],
            vec![],
        ),
        // Not compared (they diverge): `labels` and `label/<name>/values`, with or without
        // match[], over a range that excludes a series which ended earlier, e.g.
        // `label/symbol/values?match[]=orders_total{venue="kraken"}` or
        // `labels?match[]=maintenance_window` over the last 5m. Prometheus 2.42 answers from
        // the head's index without looking at the range (within the head) and lists the ended
        // series' names and values; promgate lists only series with samples in the range.
        // `series` applies the range in both.
        get("/api/v1/label/nonexistent/values", &[], vec![]),
        get("/api/v1/label/note/values", &[], vec![]),
        get("/api/v1/label/city/values", &[], vec![]),
        get(
            "/api/v1/series",
            &[r#"symbol_alias_info{city!="東京"}"#],
            vec![],
        ),
        get("/api/v1/label/symbol/values", &[], last5m()),
        get(
            "/api/v1/labels",
            &[],
            vec![
                ("start", ms_to_secs(t.s - 3_600_000)),
                ("end", ms_to_secs(t.s - 1_800_000)),
            ],
        ),
        get("/api/v1/series", &["maintenance_window"], last5m()),
        get("/api/v1/series", &["maintenance_window"], vec![]),
        get("/api/v1/label/ticket/values", &[], vec![]),
        get(
            "/api/v1/labels",
            &[r#"orders_total{venue="kraken"}"#],
            last5m(),
        ),
        get(
            "/api/v1/label/symbol/values",
            &[r#"orders_total{venue="binance"}"#],
            last5m(),
        ),
        get(
            "/api/v1/series",
            &[r#"orders_total{venue="kraken"}"#],
            vec![
                ("start", ms_to_secs(t.s - 3_600_000)),
                ("end", ms_to_secs(t.s - 1_800_000)),
            ],
        ),
    ]
}

#[test]
fn promql_answers_match_prometheus() {
    let end = (now_ms() - 20_000) / 1000 * 1000;
    let mut data = Dataset::generate(2, end, SPAN_MS);
    data.series.extend(Dataset::nan_gauges(end, SPAN_MS));
    data.series.extend(Dataset::odd_labels(end, SPAN_MS));
    let bodies = data.requests(20_000);

    let pg_dir = tempfile::tempdir().expect("tempdir");
    let pg = Promgate::start(pg_dir.path(), "");
    let prom = Prometheus::start("global: {scrape_interval: 1m}\n");
    for (i, body) in bodies.iter().enumerate() {
        for (name, url) in [
            ("promgate", pg.write_url()),
            ("Prometheus", prom.write_url()),
        ] {
            let r = post_rw_v1(&url, body.clone()).expect("POST");
            assert!(
                r.status / 100 == 2,
                "{name} refused request {i}: {} {}",
                r.status,
                r.text()
            );
        }
    }

    let t = Times {
        s: data.start_ms,
        e: data.end_ms,
        at: data.end_ms - 60_000,
        mid: data.start_ms + SPAN_MS * 62 / 100,
        edge: data.series[0].samples[100].timestamp + 5 * 60_000,
        frac: data.start_ms + SPAN_MS * 45 / 100 + 4_321,
        after: data.end_ms + 4 * 60_000 + 500,
    };

    // Both hold the whole data set.
    let count = Call::Instant {
        query: "count(last_over_time({job=\"trading\"}[1h]))".to_string(),
        time_ms: t.e,
    };
    let n = diff::call(&prom.url(), &count).expect("Prometheus count");
    assert_eq!(
        n.body["data"]["result"][0]["value"][1],
        data.series.len().to_string(),
        "Prometheus holds every series: {}",
        n.summary()
    );

    // The comparison can fail: close but different answers are told apart.
    for (a, b) in [
        ("rate(orders_total[5m])", "irate(orders_total[5m])"),
        ("orders_total", "orders_total offset 15s"),
        ("sort(orders_total)", "sort_desc(orders_total)"),
    ] {
        let q = |query: &str| Call::Instant {
            query: query.to_string(),
            time_ms: t.at,
        };
        let (want, got) = (
            diff::call(&prom.url(), &q(a)).expect("Prometheus"),
            diff::call(&prom.url(), &q(b)).expect("Prometheus"),
        );
        assert!(
            diff::compare_query(&want, &got, Order::Defined).is_err(),
            "{a} and {b} compare equal"
        );
    }

    let mut failures: Vec<String> = Vec::new();
    let cases = cases(&t);
    let mut queries = BTreeSet::new();
    let mut non_empty = 0;
    let mut posts = 0;
    let mut same_message = 0;
    for (i, case) in cases.iter().enumerate() {
        // Every fifth call also as a POST form, as Grafana sends queries.
        if i % 5 == 0 {
            posts += 1;
            let post = case.call.as_post();
            let (want, got) = both(&prom, &pg, &post);
            if let Err(e) = diff::compare_query(&want, &got, case.order) {
                failures.push(format!("{}: {e}", post.describe()));
            }
        }
        let (want, got) = both(&prom, &pg, &case.call);
        if want.error_type().is_some() {
            if want.body["error"] == got.body["error"] {
                same_message += 1;
            } else {
                // Messages are informative only: the status and errorType are the contract.
                eprintln!(
                    "note: error message differs for {}: Prometheus {}, promgate {}",
                    case.call.describe(),
                    want.body["error"],
                    got.body["error"]
                );
            }
        }
        let result = &want.body["data"]["result"];
        if result.as_array().is_some_and(|r| !r.is_empty()) || result.is_string() {
            non_empty += 1;
        }
        if let Call::Instant { query, .. } | Call::Range { query, .. } = &case.call {
            queries.insert(query.clone());
        }
        if case.must_fail && want.error_type().is_none() {
            failures.push(format!(
                "{}: expected to fail, but Prometheus answered {}",
                case.call.describe(),
                want.summary()
            ));
            continue;
        }
        if !case.must_fail && want.error_type().is_some() {
            failures.push(format!(
                "{}: Prometheus failed: {}",
                case.call.describe(),
                want.summary()
            ));
            continue;
        }
        if let Err(e) = diff::compare_query(&want, &got, case.order) {
            failures.push(format!("{}: {e}", case.call.describe()));
        }
    }
    let mut metas = meta_calls(&t);
    // series and labels also as POST forms (label values is GET only in Prometheus).
    let post: Vec<Call> = metas
        .iter()
        .filter(|c| matches!(c, Call::Get { path, .. } if !path.starts_with("/api/v1/label/")))
        .map(Call::as_post)
        .collect();
    metas.extend(post);
    for call in &metas {
        let (want, got) = both(&prom, &pg, call);
        if let Err(e) = diff::compare_list(&want, &got) {
            failures.push(format!("{}: {e}", call.describe()));
        }
    }
    // buildinfo: the same keys.
    let build = Call::Get {
        path: "/api/v1/status/buildinfo".to_string(),
        pairs: Vec::new(),
    };
    let (want, got) = both(&prom, &pg, &build);
    let keys = |a: &Answer| -> Vec<String> {
        let mut k: Vec<String> = a.body["data"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    };
    // Every key Prometheus has; promgate adds `application` and `promgateVersion`.
    let (wk, gk) = (keys(&want), keys(&got));
    if want.status != got.status || wk.is_empty() || !wk.iter().all(|k| gk.contains(k)) {
        failures.push(format!(
            "buildinfo keys: Prometheus {} {:?}, promgate {} {:?}",
            want.status, wk, got.status, gk
        ));
    }

    // status/tsdb: the same shape, head series count and time bounds, and the same top-10
    // cardinality lists (ties at the cut may list different names; memory sizes are the
    // implementation's own).
    let tsdb = Call::Get {
        path: "/api/v1/status/tsdb".to_string(),
        pairs: Vec::new(),
    };
    let (want, got) = both(&prom, &pg, &tsdb);
    if let Err(e) = compare_tsdb(&want, &got) {
        failures.push(format!("{}: {e}", tsdb.describe()));
    }

    eprintln!(
        "compared {} query calls ({} distinct queries, {} answered with data, {} errors of which {} with the same message, {} more as POST), {} metadata calls, buildinfo; {} series, {} samples",
        cases.len(),
        queries.len(),
        non_empty,
        cases.iter().filter(|c| c.must_fail).count(),
        same_message,
        posts,
        metas.len(),
        data.series.len(),
        data.sample_count()
    );
    assert!(
        failures.is_empty(),
        "{} of {} calls differ from Prometheus 2.42:\n{}",
        failures.len(),
        cases.len() + posts + metas.len() + 1,
        failures.join("\n")
    );
}

/// The same call to Prometheus (first) and promgate.
fn both(prom: &Prometheus, pg: &Promgate, call: &Call) -> (Answer, Answer) {
    let want = diff::call(&prom.url(), call)
        .unwrap_or_else(|e| panic!("{}: Prometheus: {e}", call.describe()));
    let got = diff::call(&pg.url(), call)
        .unwrap_or_else(|e| panic!("{}: promgate: {e}", call.describe()));
    (want, got)
}

/// Compares `/api/v1/status/tsdb` answers (see the test for what is compared).
fn compare_tsdb(want: &Answer, got: &Answer) -> Result<(), String> {
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    };
    let (w, g) = (&want.body["data"], &got.body["data"]);
    if want.status != got.status || keys(w) != keys(g) {
        return Err(format!(
            "shape: Prometheus {} {:?}, promgate {} {:?}",
            want.status,
            keys(w),
            got.status,
            keys(g)
        ));
    }
    let (wh, gh) = (&w["headStats"], &g["headStats"]);
    if keys(wh) != keys(gh) {
        return Err(format!(
            "headStats keys: Prometheus {:?}, promgate {:?}",
            keys(wh),
            keys(gh)
        ));
    }
    for k in ["numSeries", "minTime", "maxTime"] {
        if wh[k].is_null() || wh[k] != gh[k] {
            return Err(format!(
                "headStats.{k}: Prometheus {}, promgate {}",
                wh[k], gh[k]
            ));
        }
    }
    for list in [
        "seriesCountByMetricName",
        "labelValueCountByLabelName",
        "seriesCountByLabelValuePair",
    ] {
        let entries = |v: &serde_json::Value| -> Vec<(String, u64)> {
            v[list]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| {
                            (
                                e["name"].as_str().unwrap_or("?").to_string(),
                                e["value"].as_u64().unwrap_or(u64::MAX),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let (we, ge) = (entries(w), entries(g));
        let values = |e: &[(String, u64)]| e.iter().map(|x| x.1).collect::<Vec<_>>();
        let cut = we.iter().map(|x| x.1).min().unwrap_or(0);
        let above = |e: &[(String, u64)]| {
            let mut v: Vec<(String, u64)> = e.iter().filter(|x| x.1 > cut).cloned().collect();
            v.sort();
            v
        };
        if we.is_empty() || values(&we) != values(&ge) || above(&we) != above(&ge) {
            return Err(format!("{list}: Prometheus {we:?}, promgate {ge:?}"));
        }
    }
    Ok(())
}
