"""The words llmtop shows in more than one place, each written once: the memory figures' labels (a
gauge's, a chart series', a colour's key) and the reasons a GPU figure is not read. `n/a` is units.NA."""

RAM = "RAM"
OLLAMA_RSS = "Ollama RSS"  # the resident memory of Ollama's processes (the server and its runners)
VRAM = "VRAM"  # dedicated GPU memory
UNIFIED = "Unified"  # Apple silicon's memory: the GPU's and the CPU's at once, shown in VRAM's place
SHARED = "shared"  # system memory the GPU driver took ("shared GPU memory", GTT): a chart series, a column
SHARED_GPU = "Shared GPU"  # the same, as its gauge is labelled

NO_GPU_READ = "no GPU read"  # no backend read a GPU on this machine
NOT_READ_ON_THIS_GPU = "not read on this GPU"  # a GPU was read, but not this figure of it
