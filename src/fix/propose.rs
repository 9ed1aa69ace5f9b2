//! The proposers a session chains: the mutation repairer, then (or only)
//! the model's explain-then-patch turns. Each hands its candidates to the
//! validator ([`super::validate`]) and stops at the first accepted one.

use super::*;

/// What one model call gave: an answer, or why there is none. Typed so
/// that a budget stop is never taken for a cancel, nor either for an answer.
enum Asked {
    Answer(String),
    Stopped(Stop),
}

/// Why a model step stopped the session without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// A budget is spent (the `rejected` event says which).
    Budget,
    Cancelled,
}

/// Extra mutants of the first passing one's line tried after it, to prefer
/// the smallest plausible fix there and show the others.
const RUNNERS_UP: usize = 3;

/// One proposer of the chain.
enum Proposer {
    /// Mutants, most suspicious first, up to a cap.
    Mutation { cap: usize },
    /// The model, explain then patch, up to `--max-attempts`.
    Model(std::sync::Arc<Client>),
}

impl Session {
    /// Explain the (focused) failures: by the model's explain prompt, or,
    /// without a model, from the failures' messages and frames.
    pub(super) async fn explain(
        &self,
        p: &mut Progress<'_>,
        repairer: &Repairer,
        report: &TestReport,
    ) -> Result<String, FixError> {
        p.attempt += 1;
        let text = match repairer {
            Repairer::Model { client, .. } => {
                let project = p.ws.project_dir();
                let focus = context::focus(&project, &report.failed);
                let code = context::render_snippets(&focus.snippets, self.opts.context_tokens);
                let map = context::repo_map(&project, self.opts.map_tokens);
                let messages = p.prompts.explain.render(&[
                    ("command", &p.runner.command().command),
                    ("failures", &crate::feedback::render_report(report)),
                    ("context", &code),
                    ("repo_map", &map),
                ]);
                match self.ask(p, client, &messages).await? {
                    Asked::Answer(t) => t,
                    Asked::Stopped(why) => return Ok(stop_reason(p, why)),
                }
            }
            Repairer::Mutate => format!(
                "No model is configured, so here is what the test run says:\n{}",
                crate::feedback::render_report(report)
            ),
        };
        p.emit(FixEvent::Explanation {
            attempt: p.attempt,
            text,
        });
        Ok("explained; nothing was changed".into())
    }

    /// The proposers `repairer` stands for, in the order they run.
    fn chain(&self, repairer: &Repairer) -> Vec<Proposer> {
        match repairer {
            Repairer::Mutate => vec![Proposer::Mutation {
                cap: self.opts.max_attempts,
            }],
            Repairer::Model {
                client,
                mutate_first,
            } => {
                let mut chain = Vec::new();
                if *mutate_first && self.opts.mutate_cap > 0 {
                    chain.push(Proposer::Mutation {
                        cap: self.opts.mutate_cap,
                    });
                }
                chain.push(Proposer::Model(client.clone()));
                chain
            }
        }
    }

    /// Run the chain until a candidate is accepted (or the session is
    /// cancelled); the reason is the last proposer's.
    pub(super) async fn repair(
        &self,
        p: &mut Progress<'_>,
        repairer: &Repairer,
        baseline: &TestReport,
    ) -> Result<String, FixError> {
        let project = p.ws.project_dir();
        let focus = context::focus(&project, &baseline.failed);
        let mut reason = "nothing to try".to_string();
        for proposer in self.chain(repairer) {
            reason = match proposer {
                Proposer::Mutation { cap } => self.mutation_loop(p, &focus, cap).await?,
                Proposer::Model(client) => self.model_loop(p, &client, baseline, &focus).await?,
            };
            if p.winner.is_some() || self.cancel.is_cancelled() {
                break;
            }
        }
        Ok(reason)
    }

    /// Validate mutants, most suspicious first, up to `cap`. When coverage
    /// ranked them, up to [`RUNNERS_UP`] more mutants of the first passing
    /// one's line are tried after it, and the fix a reviewer would rather
    /// take wins: the most suspicious line, then the smallest change, then
    /// the first found. The others are named as runners-up.
    async fn mutation_loop(
        &self,
        p: &mut Progress<'_>,
        focus: &context::Focus,
        cap: usize,
    ) -> Result<String, FixError> {
        let project = p.ws.project_dir();
        let suspicion = self.localise(p).await?;
        let name = |m: &mutate::Mutant| format!("{}:{} {}", m.file, m.line, m.description);
        let mut passed: Vec<(mutate::Mutant, usize, git2::Oid)> = Vec::new();
        let mut tried = 0;
        let mut candidates = mutate::candidates(&project, focus, suspicion.as_ref());
        while tried < cap {
            let Some(m) = candidates.next() else { break };
            if self.cancel.is_cancelled() {
                return Ok("cancelled".into());
            }
            tried += 1;
            p.attempt += 1;
            let files = BTreeMap::from([(m.file.clone(), m.new_text.clone())]);
            let desc = name(&m);
            match p.try_candidate(&files, &desc, &self.cancel).await? {
                (Verdict::Accepted, Some(oid)) => {
                    if passed.is_empty() {
                        // Ranked by coverage: the runners-up are the next
                        // mutants of this line, at most RUNNERS_UP of them.
                        if m.score == 0.0 {
                            passed.push((m, p.attempt, oid));
                            break;
                        }
                        candidates.keep_line(&m.file, m.line, RUNNERS_UP);
                    }
                    passed.push((m, p.attempt, oid));
                }
                (Verdict::Cancelled, _) => return Ok("cancelled".into()),
                _ => {}
            }
        }
        let Some(best) = (0..passed.len()).min_by(|&a, &b| {
            let (x, y) = (&passed[a].0, &passed[b].0);
            y.score
                .total_cmp(&x.score)
                .then(x.size.cmp(&y.size))
                .then(a.cmp(&b))
        }) else {
            return Ok(if tried < cap {
                format!("no mutant of the {tried} candidates passes the tests")
            } else {
                format!("no mutant passes within the cap of {cap} (raise --max-attempts)")
            });
        };
        let (m, attempt, oid) = &passed[best];
        if p.winner != Some(*attempt) {
            p.ws.set_winner(*oid)?;
            p.winner = Some(*attempt);
        }
        p.runners_up = passed
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != best)
            .map(|(_, (m, a, _))| format!("attempt {a}: {}", name(m)))
            .collect();
        let mut reason = format!("mutant {} passes every test", name(m));
        if !p.runners_up.is_empty() {
            reason.push_str(&format!(
                "; {} other plausible fix(es) also pass (runners-up: {})",
                p.runners_up.len(),
                p.runners_up.join("; ")
            ));
        }
        Ok(reason)
    }

    /// Fault localisation: the suite once under coverage (pytest only);
    /// `None` when the runner cannot or the run gave nothing usable.
    async fn localise(&self, p: &mut Progress<'_>) -> Result<Option<Suspicion>, FixError> {
        let covered = p.runner.run_covered(&self.cancel).await;
        // Whatever the covered run did to the work copy is undone.
        p.ws.reset()?;
        let Some((run, data)) = covered? else {
            return Ok(None);
        };
        let failing: BTreeSet<String> = p.failing.iter().cloned().collect();
        let Some(s) = Suspicion::ochiai(&data, &failing, &p.passed_before) else {
            return Ok(None);
        };
        p.emit(FixEvent::Localised {
            duration_ms: run.duration_ms,
            lines: s.top(10).to_vec(),
        });
        Ok(Some(s))
    }

    async fn model_loop(
        &self,
        p: &mut Progress<'_>,
        client: &Client,
        baseline: &TestReport,
        focus: &context::Focus,
    ) -> Result<String, FixError> {
        let project = p.ws.project_dir();
        let format = self
            .opts
            .edit_format
            .unwrap_or_else(|| EditFormat::for_model(client));
        // An in-process model reads every prompt token on this CPU: give it
        // the code the tests reach and a short map, not a whole budget.
        let (context_tokens, map_tokens) = if crate::model::Model::in_process(client) {
            (
                self.opts.context_tokens.min(1500),
                self.opts.map_tokens.min(200),
            )
        } else {
            (self.opts.context_tokens, self.opts.map_tokens)
        };
        let code = context::render_snippets(&focus.snippets, context_tokens);
        let map = context::repo_map(&project, map_tokens);
        let template = match format {
            EditFormat::SearchReplace => p.prompts.patch.clone(),
            EditFormat::Function => p.prompts.patch_function.clone(),
        };
        let under_repair: Vec<(String, String)> = focus
            .snippets
            .iter()
            .map(|s| s.file.clone())
            .filter(|f| !patch::is_test_file(f))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter_map(|f| p.ws.read(&f).map(|t| (f, t)))
            .collect();
        let tests_rule = if self.opts.allow_test_edits {
            "You may edit test files if they are wrong."
        } else {
            "Test files are read-only: fix the code under test, never the tests."
        };
        let mut report = baseline.clone();
        let mut feedback = String::new();
        let mut last_signature = baseline.signature();
        let mut seen_replies: BTreeSet<String> = BTreeSet::new();
        let mut model_attempts = 0;
        while model_attempts < self.opts.max_attempts {
            if self.cancel.is_cancelled() {
                return Ok("cancelled".into());
            }
            model_attempts += 1;
            p.attempt += 1;
            let mut messages = p.prompts.explain.render(&[
                ("command", &p.runner.command().command),
                ("failures", &crate::feedback::render_report(&report)),
                ("context", &code),
                ("repo_map", &map),
            ]);
            let explanation = match self.ask(p, client, &messages).await? {
                Asked::Answer(t) => t,
                Asked::Stopped(why) => return Ok(stop_reason(p, why)),
            };
            p.emit(FixEvent::Explanation {
                attempt: p.attempt,
                text: explanation.clone(),
            });
            messages.push(Message::assistant(explanation));
            messages.push(Message::user(template.render_user(&[
                ("test_files_rule", tests_rule),
                ("feedback", &feedback),
            ])));
            let reply = match self.ask(p, client, &messages).await? {
                Asked::Answer(t) => t,
                Asked::Stopped(why) => return Ok(stop_reason(p, why)),
            };
            if !seen_replies.insert(reply.trim().to_string()) {
                p.emit(FixEvent::Rejected {
                    attempt: p.attempt,
                    reason: "the model repeated an earlier patch".into(),
                });
                return Ok("the model keeps repeating itself (the same patch twice)".into());
            }
            let edits = match format {
                EditFormat::SearchReplace => patch::parse(&reply),
                // SEARCH/REPLACE blocks in the reply are taken as they are.
                EditFormat::Function => {
                    patch::parse(&reply).or_else(|_| function_edit::parse(&reply, &under_repair))
                }
            };
            let files = edits.and_then(|edits| {
                patch::apply(&edits, self.opts.allow_test_edits, |f| p.ws.read(f))
            });
            let files = match files {
                Ok(f) => f,
                Err(e) => {
                    p.emit(FixEvent::Rejected {
                        attempt: p.attempt,
                        reason: e.to_string(),
                    });
                    feedback = format!("Your previous patch was not applied: {e}. Try again.");
                    continue;
                }
            };
            match p
                .try_candidate(&files, "model patch", &self.cancel)
                .await?
                .0
            {
                Verdict::Accepted => return Ok("the model's patch passes every test".into()),
                Verdict::Cancelled => return Ok("cancelled".into()),
                Verdict::Rejected(reason, new_report) => {
                    feedback = format!(
                        "Your previous patch was applied and tested, then rolled back: {reason}. The code is as before; try a different fix."
                    );
                    if let Some(r) = new_report {
                        let sig = r.signature();
                        if sig == last_signature && model_attempts > 1 {
                            return Ok(format!(
                                "the same failure repeats after attempt {}",
                                p.attempt
                            ));
                        }
                        last_signature = sig;
                        if !r.failed.is_empty() {
                            report = r;
                        }
                    }
                }
            }
        }
        Ok(format!("no fix within {} attempts", self.opts.max_attempts))
    }

    /// One model call: its answer, or a budget or cancel stop. The session
    /// id tags the call for per-session budgets; it is not part of the
    /// request's fingerprint, so a replay (a new session) finds it.
    async fn ask(
        &self,
        p: &mut Progress<'_>,
        client: &Client,
        messages: &[Message],
    ) -> Result<Asked, FixError> {
        let req = ChatRequest::new(messages.to_vec()).with_task(p.ws.info.id.clone());
        match client.complete_with_cancel(&req, &self.cancel).await {
            Ok(c) => {
                p.tokens += c.usage.prompt_tokens + c.usage.completion_tokens;
                p.cost += c.cost_usd;
                p.emit(FixEvent::Usage {
                    tokens: p.tokens,
                    cost_usd: p.cost,
                });
                Ok(Asked::Answer(c.text().to_string()))
            }
            Err(ModelError::Cancelled) => Ok(Asked::Stopped(Stop::Cancelled)),
            Err(e) if e.is_budget_exceeded() => {
                p.emit(FixEvent::Rejected {
                    attempt: p.attempt,
                    reason: e.to_string(),
                });
                Ok(Asked::Stopped(Stop::Budget))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The session's reason for ending at a model step that stopped.
fn stop_reason(p: &Progress<'_>, why: Stop) -> String {
    match why {
        Stop::Cancelled => "cancelled".into(),
        Stop::Budget => format!("budget reached after {} tokens (${:.4})", p.tokens, p.cost),
    }
}
