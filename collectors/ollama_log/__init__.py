"""Read Ollama's server log: one LoadRecord per model load, from every format Ollama has printed.

Pure: lines in, records out; no I/O. One module per era, each a table of the lines it reads (pattern,
what it sets), and a small core that owns the loads:
- server_lines: Ollama's own lines of every era (discovery, the runner's start and end, errors);
- runner_era: 0.1-0.5, Ollama's plan and llama.cpp's own lines (which every later era prints too);
- engine_era: 0.6-0.24, the Go engine's load request, buffers and confirmation;
- llama_server_era: 0.30 on, llama-server's devices, fit step and requests;
- reader: the core (OllamaLogParser): the loads' lifecycle, the server's facts, the tables in order;
- records: what a load is (LoadRecord, its buffers, requests, fit); lines: a line made readable;
- access: Gin's access lines, the requests the server served.
Why the layers landed where they did is measure/split_reason.py's; a prompt's time left, measure/time_left.py's.

Lines reach users with prefixes (journald, `docker compose`, kubectl, `>>> ` or `> ` in bug
reports), colour codes and CRLF endings: every pattern is searched anywhere in the line.
"""

from llmtop.collectors.ollama_log.access import GENERATING, ServedRequest, go_duration, served_request
from llmtop.collectors.ollama_log.lines import MAX_LINE, clean_line, logfmt, size_bytes, split_lines
from llmtop.collectors.ollama_log.reader import OllamaLogParser, parse_lines
from llmtop.collectors.ollama_log.records import DeviceBuffer, FitProjection, LoadRecord, RequestTiming

__all__ = [
    "GENERATING",
    "MAX_LINE",
    "DeviceBuffer",
    "FitProjection",
    "LoadRecord",
    "OllamaLogParser",
    "RequestTiming",
    "ServedRequest",
    "clean_line",
    "go_duration",
    "logfmt",
    "parse_lines",
    "served_request",
    "size_bytes",
    "split_lines",
]
