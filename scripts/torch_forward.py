# Times the official PromptIR forward (net/model.py of va1shn9v/PromptIR, default config,
# eval mode, float32, inference_mode) on one device, for the side-by-side figures of
# docs/performance.md. The official file is not part of this repository: copy net/model.py
# of https://github.com/va1shn9v/PromptIR to .gpu/promptir_model.py (or set PROMPTIR_MODEL
# to its folder, the file named promptir_model.py).
#
#   python3 scripts/torch_forward.py cpu 128 256 512      # RUNS=5 timed runs after a warm-up
#   python3 scripts/torch_forward.py cuda 256 512
import sys, time, os, statistics
import torch
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("PROMPTIR_MODEL", os.path.join(here, "..", ".gpu")))
from promptir_model import PromptIR
dev = sys.argv[1]
sizes = [int(s) for s in sys.argv[2:]] or [256, 512]
runs = int(os.environ.get("RUNS", "5"))
torch.manual_seed(0)
m = PromptIR(decoder=True).to(dev).eval()
print(f"torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}, "
      f"params {sum(p.numel() for p in m.parameters())}")
sync = (lambda: torch.cuda.synchronize()) if dev.startswith("cuda") else (lambda: None)
for s in sizes:
    x = torch.rand(1, 3, s, s, device=dev)
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        m(x); sync()
        t = []
        for _ in range(runs):
            t0 = time.perf_counter(); y = m(x); sync(); t.append(time.perf_counter() - t0)
    extra = ""
    if dev.startswith("cuda"):
        extra = f" peak_alloc_MB {torch.cuda.max_memory_allocated() / 2**20:.0f}"
    print(f"torch {dev} {s}: min {min(t):.4f} median {statistics.median(t):.4f} max {max(t):.4f} s{extra}",
          flush=True)
