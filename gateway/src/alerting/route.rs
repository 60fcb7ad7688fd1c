//! The routing tree of alertmanager.yml, as Alertmanager 0.25 builds and walks it
//! (`dispatch/route.go`): options inherited from the parent unless set, Alertmanager's defaults
//! at the root (group_wait 30s, group_interval 5m, repeat_interval 4h), `match`, `match_re` and
//! `matchers` merged into one sorted list, depth-first matching where the first matching child
//! ends the walk unless it has `continue: true`, and a node with no matching child matching
//! itself.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::config::RouteConfig;
use super::matcher::{MatchType, Matcher, Matchers};

pub const DEFAULT_GROUP_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
pub const DEFAULT_REPEAT_INTERVAL: Duration = Duration::from_secs(4 * 3600);

/// What a route does with the alerts it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteOpts {
    pub receiver: String,
    pub group_by: BTreeSet<String>,
    /// `group_by: ['...']`: every label groups.
    pub group_by_all: bool,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
}

/// A node of the tree.
#[derive(Clone, Debug)]
pub struct Route {
    pub opts: RouteOpts,
    pub matchers: Matchers,
    pub continue_matching: bool,
    pub routes: Vec<Route>,
    /// `Route.Key()`: the parent's key, `/`, this node's matchers; the first part of every
    /// group key.
    pub key: String,
    /// `Route.ID()`: the key plus the position among siblings (unique).
    pub id: String,
    /// Position in a depth-first walk (0 is the root): the route's index in
    /// [`Route::flatten`].
    pub index: usize,
}

impl Route {
    /// Builds the tree from the root route's configuration.
    pub fn new(cfg: &RouteConfig) -> Self {
        let root = RouteOpts {
            receiver: String::new(),
            group_by: BTreeSet::new(),
            group_by_all: false,
            group_wait: DEFAULT_GROUP_WAIT,
            group_interval: DEFAULT_GROUP_INTERVAL,
            repeat_interval: DEFAULT_REPEAT_INTERVAL,
        };
        let mut tree = Self::build(cfg, &root, None, 0);
        let mut next = 0;
        tree.number(&mut next);
        tree
    }

    fn number(&mut self, next: &mut usize) {
        self.index = *next;
        *next += 1;
        for r in &mut self.routes {
            r.number(next);
        }
    }

    /// Every node in walk order, so `flatten()[r.index]` is `r`.
    pub fn flatten(&self) -> Vec<&Route> {
        let mut out = Vec::new();
        self.walk(&mut |r| out.push(r));
        out
    }

    fn build(cfg: &RouteConfig, parent: &RouteOpts, parent_key: Option<&str>, pos: usize) -> Self {
        let mut opts = parent.clone();
        if let Some(r) = cfg.receiver.as_deref().filter(|r| !r.is_empty()) {
            opts.receiver = r.to_string();
        }
        // As `NewRoute`: labels replace the parent's grouping; `...` alone turns on grouping
        // by all labels; an empty list (like no list) inherits.
        if let Some(g) = &cfg.group_by {
            let labels: BTreeSet<String> = g.iter().filter(|l| *l != "...").cloned().collect();
            if !labels.is_empty() {
                opts.group_by = labels;
                opts.group_by_all = false;
            } else if g.iter().any(|l| l == "...") {
                opts.group_by_all = true;
            }
        }
        if let Some(d) = cfg.group_wait {
            opts.group_wait = d;
        }
        if let Some(d) = cfg.group_interval {
            opts.group_interval = d;
        }
        if let Some(d) = cfg.repeat_interval {
            opts.repeat_interval = d;
        }
        let mut matchers = Vec::new();
        for (k, v) in &cfg.matches {
            if let Ok(m) = Matcher::new(MatchType::Equal, k, v) {
                matchers.push(m);
            }
        }
        for (k, v) in &cfg.match_re {
            matchers.push(v.matcher(k));
        }
        matchers.extend(cfg.matchers.iter().cloned());
        let mut matchers = Matchers(matchers);
        matchers.sort();
        let key = match parent_key {
            Some(p) => format!("{p}/{matchers}"),
            None => matchers.to_string(),
        };
        let id = match parent_key {
            Some(_) => format!("{key}/{pos}"),
            None => key.clone(),
        };
        let routes = cfg
            .routes
            .iter()
            .enumerate()
            .map(|(i, c)| Self::build(c, &opts, Some(&key), i))
            .collect();
        Self {
            opts,
            matchers,
            continue_matching: cfg.continue_matching,
            routes,
            key,
            id,
            index: 0,
        }
    }

    /// The routes an alert with these labels goes to, in tree order (`Route.Match`).
    pub fn matches<'a>(&'a self, labels: &BTreeMap<String, String>) -> Vec<&'a Route> {
        let mut out = Vec::new();
        self.collect(labels, &mut out);
        out
    }

    fn collect<'a>(&'a self, labels: &BTreeMap<String, String>, out: &mut Vec<&'a Route>) -> bool {
        if !self.matchers.matches(labels) {
            return false;
        }
        let before = out.len();
        for child in &self.routes {
            if child.collect(labels, out) && !child.continue_matching {
                break;
            }
        }
        if out.len() == before {
            out.push(self);
        }
        true
    }

    /// Every node, depth first.
    pub fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Route)) {
        f(self);
        for r in &self.routes {
            r.walk(f);
        }
    }

    /// The labels of `labels` this route groups by (`getGroupLabels`).
    pub fn group_labels(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        labels
            .iter()
            .filter(|(k, _)| self.opts.group_by_all || self.opts.group_by.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests;
