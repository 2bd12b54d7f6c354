"""Recorded Linux trees for the GPU readers: an AMD Radeon RX 7600 XT (16 GB) at 0000:03:00.0 and an
Intel iGPU, and the Ollama processes' fdinfo, in the formats the amdgpu/i915 drivers write
(kernel Documentation/gpu/drm-usage-stats.rst and amdgpu sysfs)."""

from __future__ import annotations

from pathlib import Path

GiB = 1024**3

AMD_CARD = {
    "vendor": "0x1002",
    "device": "0x7480",
    "product_name": "AMD Radeon RX 7600 XT",
    "uevent": "DRIVER=amdgpu\nPCI_CLASS=30000\nPCI_ID=1002:7480\nPCI_SLOT_NAME=0000:03:00.0\n",
    "mem_info_vram_total": "17163091968",
    "mem_info_vram_used": "15932489728",
    "mem_info_vis_vram_total": "17163091968",
    "mem_info_vis_vram_used": "15902261248",
    "mem_info_gtt_total": "33554432000",
    "mem_info_gtt_used": "2147483648",
    "gpu_busy_percent": "97",
}

INTEL_CARD = {
    "vendor": "0x8086",
    "device": "0x4680",
    "uevent": "DRIVER=i915\nPCI_SLOT_NAME=0000:00:02.0\n",
}

# Ollama's runner (pid 4243) has the GPU open through three fds; two are one DRM client (id 17).
FDINFO_AMD = (
    "pos:\t0\nflags:\t02100002\nmnt_id:\t24\nino:\t1022\ndrm-driver:\tamdgpu\ndrm-pdev:\t0000:03:00.0\n"
    "drm-client-id:\t{client}\ndrm-memory-vram:\t{vram} KiB\ndrm-memory-gtt:\t{gtt} KiB\ndrm-memory-cpu:\t0 KiB\n"
    "drm-engine-gfx:\t1234567890 ns\n"
)
FDINFO_INTEL = (
    "pos:\t0\nflags:\t02100002\ndrm-driver:\ti915\ndrm-pdev:\t0000:00:02.0\ndrm-client-id:\t3\n"
    "drm-total-local0:\t0\ndrm-total-system0:\t2048 KiB\n"
)


def write_tree(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def sysfs_tree(root: Path, amd: dict[str, str] | None = None, intel: bool = False) -> Path:
    files = {f"class/drm/card1/device/{k}": v for k, v in (amd or AMD_CARD).items()}
    files["class/drm/card1-DP-1/status"] = "connected\n"  # a connector, not a card
    files["class/drm/renderD128/dev"] = "226:128\n"
    if intel:
        files.update({f"class/drm/card0/device/{k}": v for k, v in INTEL_CARD.items()})
    write_tree(root, files)
    return root


def proc_tree(root: Path) -> Path:
    write_tree(
        root,
        {
            "4243/fdinfo/12": FDINFO_AMD.format(client=17, vram=14 * 1024 * 1024, gtt=1536 * 1024),
            "4243/fdinfo/13": FDINFO_AMD.format(client=17, vram=14 * 1024 * 1024, gtt=1536 * 1024),
            "4243/fdinfo/14": FDINFO_AMD.format(client=18, vram=512 * 1024, gtt=0),
            "4243/fdinfo/0": "pos:\t0\nflags:\t0100002\nmnt_id:\t25\n",
            "4242/fdinfo/3": "pos:\t0\nflags:\t02\n",
            "4243/fdinfo/20": FDINFO_INTEL,
            "999/fdinfo/5": FDINFO_AMD.format(client=40, vram=1024, gtt=1024),  # someone else's process
        },
    )
    return root
