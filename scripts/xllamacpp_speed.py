"""Reference speed: llama.cpp (the xllamacpp wheel) on a GGUF, greedy.

Usage: python xllamacpp_speed.py MODEL.gguf THREADS PROMPT_FILE MAX_TOKENS
Prints one JSON object: load time, prompt tokens, prefill and decode tok/s,
and the process's peak resident set.
Run with OMP_WAIT_POLICY=PASSIVE so its threads do not spin under load.
"""
import json
import resource
import sys
import time

import xllamacpp as xlc

path, threads, prompt_file, n_predict = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
prompt = open(prompt_file, encoding="utf-8").read()
p = xlc.CommonParams()
p.model.path = path
p.n_ctx = 4096
p.n_parallel = 1
p.cpuparams.n_threads = threads
p.cpuparams_batch.n_threads = threads
p.warmup = False
t = time.time()
s = xlc.Server(p)
load = time.time() - t
req = {
    "messages": [{"role": "user", "content": prompt}],
    "max_tokens": n_predict,
    "temperature": 0,
    "stream": False,
}
r = s.handle_chat_completions(req)
tm = r.get("timings", {})
print(json.dumps({
    "load_s": round(load, 2),
    "prompt_tokens": tm.get("prompt_n"),
    "prefill_tok_s": tm.get("prompt_per_second"),
    "completion_tokens": tm.get("predicted_n"),
    "decode_tok_s": tm.get("predicted_per_second"),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "text": r["choices"][0]["message"]["content"],
}))
