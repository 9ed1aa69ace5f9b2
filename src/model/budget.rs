//! Token, dollar and call budgets, per task and per run.
//!
//! A budget is checked before every call and charged after it. Calls are
//! counted when they start, so a call limit is exact even under concurrency;
//! tokens and dollars are only known afterwards, so calls already in flight
//! when a limit is reached may overshoot it (by at most `concurrency` calls).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::types::Usage;

/// Limits for one scope; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub tokens: Option<u64>,
    pub usd: Option<f64>,
    pub calls: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Budgets {
    /// Across the whole run.
    pub run: Limits,
    /// For each task separately (calls with no task only count to the run).
    pub task: Limits,
}

/// What a scope has used so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spent {
    pub tokens: u64,
    pub usd: f64,
    pub calls: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Run,
    Task(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Run => f.write_str("run"),
            Scope::Task(t) => write!(f, "task {t}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetKind {
    Tokens,
    Dollars,
    Calls,
}

/// A budget was reached; the run should stop cleanly.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{scope} budget reached: {}", self.describe())]
pub struct BudgetExceeded {
    pub scope: Scope,
    pub kind: BudgetKind,
    pub limit: f64,
    pub spent: f64,
}

impl BudgetExceeded {
    fn describe(&self) -> String {
        match self.kind {
            BudgetKind::Tokens => format!(
                "{} tokens used of {} allowed",
                self.spent as u64, self.limit as u64
            ),
            BudgetKind::Dollars => {
                format!("${:.4} spent of ${:.4} allowed", self.spent, self.limit)
            }
            BudgetKind::Calls => format!(
                "{} calls made of {} allowed",
                self.spent as u64, self.limit as u64
            ),
        }
    }
}

#[derive(Default)]
struct State {
    run: Spent,
    tasks: HashMap<String, Spent>,
}

/// Shared accounting for one run.
#[derive(Default)]
pub struct BudgetTracker {
    budgets: Budgets,
    state: Mutex<State>,
}

impl BudgetTracker {
    pub fn new(budgets: Budgets) -> Self {
        BudgetTracker {
            budgets,
            state: Mutex::new(State::default()),
        }
    }

    pub fn budgets(&self) -> Budgets {
        self.budgets
    }

    /// Check every applicable limit and, if none is reached, count the call.
    pub fn reserve(&self, task: Option<&str>) -> Result<(), BudgetExceeded> {
        let mut st = self.lock();
        check(Scope::Run, &self.budgets.run, &st.run)?;
        if let Some(t) = task {
            let spent = st.tasks.get(t).copied().unwrap_or_default();
            check(Scope::Task(t.to_string()), &self.budgets.task, &spent)?;
            st.tasks.entry(t.to_string()).or_default().calls += 1;
        }
        st.run.calls += 1;
        Ok(())
    }

    /// Charge a finished call.
    pub fn record(&self, task: Option<&str>, usage: &Usage, cost_usd: f64) {
        let mut st = self.lock();
        add(&mut st.run, usage, cost_usd);
        if let Some(t) = task {
            add(st.tasks.entry(t.to_string()).or_default(), usage, cost_usd);
        }
    }

    pub fn run_spent(&self) -> Spent {
        self.lock().run
    }

    pub fn task_spent(&self, task: &str) -> Spent {
        self.lock().tasks.get(task).copied().unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain counters: still valid if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn add(s: &mut Spent, usage: &Usage, cost: f64) {
    s.tokens += usage.total();
    s.usd += cost;
}

fn check(scope: Scope, limits: &Limits, spent: &Spent) -> Result<(), BudgetExceeded> {
    let over = |kind, limit: f64, spent: f64| BudgetExceeded {
        scope: scope.clone(),
        kind,
        limit,
        spent,
    };
    if let Some(l) = limits.calls
        && spent.calls >= l
    {
        return Err(over(BudgetKind::Calls, l as f64, spent.calls as f64));
    }
    if let Some(l) = limits.tokens
        && spent.tokens >= l
    {
        return Err(over(BudgetKind::Tokens, l as f64, spent.tokens as f64));
    }
    if let Some(l) = limits.usd
        && spent.usd >= l
    {
        return Err(over(BudgetKind::Dollars, l, spent.usd));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(p: u64, c: u64) -> Usage {
        Usage {
            prompt_tokens: p,
            completion_tokens: c,
            estimated: false,
            timing: None,
        }
    }

    #[test]
    fn call_limit_is_exact() {
        let t = BudgetTracker::new(Budgets {
            run: Limits {
                calls: Some(2),
                ..Limits::default()
            },
            ..Budgets::default()
        });
        assert!(t.reserve(None).is_ok());
        assert!(t.reserve(None).is_ok());
        let e = t.reserve(None).unwrap_err();
        assert_eq!(e.kind, BudgetKind::Calls);
        assert_eq!(e.scope, Scope::Run);
    }

    #[test]
    fn task_limits_are_per_task() {
        let t = BudgetTracker::new(Budgets {
            task: Limits {
                tokens: Some(10),
                ..Limits::default()
            },
            ..Budgets::default()
        });
        t.reserve(Some("a")).unwrap();
        t.record(Some("a"), &usage(8, 2), 0.0);
        let e = t.reserve(Some("a")).unwrap_err();
        assert_eq!(e.scope, Scope::Task("a".into()));
        assert!(e.to_string().contains("10 tokens used of 10 allowed"));
        t.reserve(Some("b")).unwrap();
        assert_eq!(t.run_spent().tokens, 10);
    }

    #[test]
    fn dollar_limit() {
        let t = BudgetTracker::new(Budgets {
            run: Limits {
                usd: Some(0.01),
                ..Limits::default()
            },
            ..Budgets::default()
        });
        t.reserve(None).unwrap();
        t.record(None, &usage(1, 1), 0.02);
        let e = t.reserve(None).unwrap_err();
        assert_eq!(e.kind, BudgetKind::Dollars);
    }
}
