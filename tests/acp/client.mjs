// End-to-end ACP client on the official TypeScript SDK: spawns
// `selfrepair acp`, drives one scenario and prints what it saw as JSON.
//
//   node client.mjs SELFREPAIR_BIN REPO_DIR SCENARIO
//
// Scenarios: fix (prompt "fix the failing tests", approve the write), dirty
// (the same, while the editor's buffer has unsaved changes),
// decline (the same, but refuse the permission), cancel (cancel once the
// first test run starts), protocol (bad requests must get JSON-RPC errors),
// two (two sessions at once on two repos: REPO_DIR and REPO_DIR + "-b").
import { spawn } from "node:child_process";
import { Readable, Writable } from "node:stream";
import * as fs from "node:fs";
import * as acp from "@agentclientprotocol/sdk";

const [, , bin, repo, scenario] = process.argv;
const child = spawn(bin, ["acp", "--timeout", "120"], {
  stdio: ["pipe", "pipe", "inherit"],
  env: process.env,
});
const stream = acp.ndJsonStream(Writable.toWeb(child.stdin), Readable.toWeb(child.stdout));

const updates = [];
const permissions = [];
const writes = {};
const reads = [];
let onFirstTestRun = null;

const app = acp
  .client({ name: "selfrepair-e2e" })
  .onRequest(acp.methods.client.session.requestPermission, async ({ params: p }) => {
    permissions.push(p);
    const optionId = scenario === "decline" ? "skip" : "apply";
    return { outcome: { outcome: "selected", optionId } };
  })
  .onRequest(acp.methods.client.fs.readTextFile, async ({ params: p }) => {
    reads.push(p.path);
    const text = fs.readFileSync(p.path, "utf8");
    // "dirty": the editor holds unsaved changes to the file.
    return { content: scenario === "dirty" ? text + "# unsaved edit\n" : text };
  })
  .onRequest(acp.methods.client.fs.writeTextFile, async ({ params: p }) => {
    writes[p.path] = p.content;
    fs.writeFileSync(p.path, p.content);
    return {};
  })
  .onNotification(acp.methods.client.session.update, async ({ params: n }) => {
    updates.push({ sessionId: n.sessionId, ...n.update });
    if (n.update.sessionUpdate === "tool_call" && n.update.kind === "execute" && onFirstTestRun) {
      const f = onFirstTestRun;
      onFirstTestRun = null;
      f(n.sessionId);
    }
  });

async function expectError(p) {
  try {
    await p;
    return { ok: true };
  } catch (e) {
    return { ok: false, code: e.code, message: String(e.message ?? e) };
  }
}

const out = await app.connectWith(stream, async (ctx) => {
  const i = await ctx.request(acp.methods.agent.initialize, {
    protocolVersion: 1,
    clientCapabilities: { fs: { readTextFile: true, writeTextFile: true }, terminal: false },
  });
  const init = { protocolVersion: i.protocolVersion, agentInfo: i.agentInfo, agentCapabilities: i.agentCapabilities };
  const plain = (r) => ({ stopReason: r.stopReason, _meta: r._meta });
  const prompt = (sessionId, text) =>
    ctx.request(acp.methods.agent.session.prompt, { sessionId, prompt: [{ type: "text", text }] });

  if (scenario === "protocol") {
    return {
      init,
      unknownMethod: await expectError(ctx.request("session/frobnicate", {})),
      badParams: await expectError(ctx.request(acp.methods.agent.session.new, { cwd: 42 })),
      relativeCwd: await expectError(ctx.request(acp.methods.agent.session.new, { cwd: "rel/dir", mcpServers: [] })),
      unknownSession: await expectError(prompt("sr-nope", "fix the failing tests")),
    };
  }
  if (scenario === "two") {
    const a = await ctx.request(acp.methods.agent.session.new, { cwd: repo, mcpServers: [] });
    const b = await ctx.request(acp.methods.agent.session.new, { cwd: repo + "-b", mcpServers: [] });
    const [ra, rb] = await Promise.all([
      prompt(a.sessionId, "fix the failing tests"),
      prompt(b.sessionId, "fix the failing tests"),
    ]);
    return { init, sessions: [a.sessionId, b.sessionId], responses: [plain(ra), plain(rb)] };
  }
  const { sessionId } = await ctx.request(acp.methods.agent.session.new, { cwd: repo, mcpServers: [] });
  if (scenario === "cancel") {
    let cancelledAt = 0;
    onFirstTestRun = (sid) => {
      cancelledAt = Date.now();
      ctx.notify(acp.methods.agent.session.cancel, { sessionId: sid });
    };
    const resp = await prompt(sessionId, "fix the failing tests");
    return { init, sessionId, response: plain(resp), cancelToStopMs: Date.now() - cancelledAt };
  }
  const text = scenario === "explain" ? "why does test test_reorder_at_level fail?" : "fix the failing tests";
  const response = await prompt(sessionId, text);
  return { init, sessionId, response: plain(response) };
});

console.log(JSON.stringify({ ...out, updates, permissions, writes, reads }));
child.stdin.end();
const code = await new Promise((resolve) => {
  const t = setTimeout(() => {
    child.kill("SIGKILL");
    resolve("killed");
  }, 5000);
  child.on("exit", (c) => {
    clearTimeout(t);
    resolve(c);
  });
});
process.stderr.write(`selfrepair acp exited: ${code}\n`);
