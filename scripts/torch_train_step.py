# Times one training step of the official PromptIR (net/model.py of va1shn9v/PromptIR, default
# config) in PyTorch: forward, L1 loss, backward, AdamW step, on random 128×128 crops, for the
# side-by-side training figures of docs/performance.md. The official file is not part of this
# repository: copy net/model.py of https://github.com/va1shn9v/PromptIR to
# .gpu/promptir_model.py (or set PROMPTIR_MODEL to its folder, the file named
# promptir_model.py).
#
#   python3 scripts/torch_train_step.py cpu 2        # batch 2; RUNS=3 timed steps after a warm-up
#   python3 scripts/torch_train_step.py cuda 16 32 64 128
import sys, time, os, statistics
import torch
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("PROMPTIR_MODEL", os.path.join(here, "..", ".gpu")))
from promptir_model import PromptIR
dev = sys.argv[1]
batches = [int(s) for s in sys.argv[2:]] or [2]
size = int(os.environ.get("SIZE", "128"))
runs = int(os.environ.get("RUNS", "3"))
torch.manual_seed(0)
m = PromptIR(decoder=True).to(dev).train()
opt = torch.optim.AdamW(m.parameters(), lr=2e-4)
print(f"torch {torch.__version__}, device {dev}, threads {torch.get_num_threads()}, "
      f"params {sum(p.numel() for p in m.parameters())}, crops {size}x{size}")
sync = (lambda: torch.cuda.synchronize()) if dev.startswith("cuda") else (lambda: None)
for b in batches:
    x = torch.rand(b, 3, size, size, device=dev)
    y = torch.rand(b, 3, size, size, device=dev)
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.l1_loss(m(x), y)
        loss.backward()
        opt.step()
        sync()
        if i > 0:
            t.append(time.perf_counter() - t0)
    extra = ""
    if dev.startswith("cuda"):
        extra = f" peak_alloc_MB {torch.cuda.max_memory_allocated() / 2**20:.0f}"
    med = statistics.median(t)
    print(f"torch {dev} train batch {b}: min {min(t):.3f} median {med:.3f} max {max(t):.3f} s, "
          f"{b / med:.2f} images/s{extra}", flush=True)
