"""llama-server's log lines of one load and one request, in the real format."""

from __future__ import annotations

LLAMA_SERVER_LOAD = [
    'time=2026-06-02T10:00:00.000Z level=INFO source=llama_server.go:431 msg="starting llama-server" '
    'cmd="/usr/lib/ollama/llama-server --model /root/.ollama/models/blobs/sha256-6a0 --port 40123 --host 127.0.0.1 '
    '--no-webui --offline -c 4096 -np 1 --log-verbosity 4 --no-log-prefix --no-log-timestamps"',
    "load_tensors: offloaded 15/33 layers to GPU",
    "load_tensors:        CUDA0 model buffer size =  1850.00 MiB",
    'time=2026-06-02T10:00:15.370Z level=INFO source=llama_server.go:640 msg="llama-server started in 15.37 seconds"',
]


REQUEST = [
    "slot print_timing: id  0 | task 79 | prompt processing, n_tokens =   2560, progress = 0.35, t =   3.30 s / "
    "776.33 tokens per second",
    "slot print_timing: id  0 | task 79 | n_decoded =    100, tg =   3.44 t/s",
    "slot print_timing: id  0 | task 79 | prompt eval time =   10950.33 ms /  7303 tokens (    1.50 ms per token,   "
    "666.92 tokens per second)",
    "slot print_timing: id  0 | task 79 |        eval time =   20840.36 ms /    64 tokens (  325.63 ms per token,     "
    "3.07 tokens per second)",
    "slot print_timing: id  0 | task 79 |       total time =   31790.69 ms /  7367 tokens",
]
