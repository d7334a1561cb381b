"""The HTML report in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

At a desktop (1280 px) and a phone (390 px) width: no console errors, every image decodes, the page does not
scroll sideways (wide tables scroll in their own box), nothing is fetched from the network, and the trade-off
chart answers the pointer with steps, data and time. Skips when Playwright or Chromium is absent
(``TRAINWISE_CHROMIUM`` names another browser binary).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from trainwise.plan import format_plan, make_plan, read_measurement
from trainwise.report.html import write_report


def _chromium() -> str:
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    path = os.environ.get("TRAINWISE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("no Chromium binary (apt-get install chromium, or set TRAINWISE_CHROMIUM)")
    return path


def _report(tmp: Path) -> Path:
    """measure-style monitor log → two plans (measured, and scaling laws only) + a branched result → report."""
    from trainwise import NoiseScaleMonitor

    torch.manual_seed(0)
    x, teacher = torch.randn(512, 16), nn.Linear(16, 4)
    y = teacher(x).argmax(-1)
    model = nn.Linear(16, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    monitor = NoiseScaleMonitor(model, source="accumulation", log_path=tmp / "run" / "noise.jsonl",
                                meta={"optimizer": "sgd"})
    for _ in range(40):
        for half in torch.randint(512, (32,)).chunk(2):
            (nn.functional.cross_entropy(model(x[half]), y[half]) / 2).backward()
            monitor.micro_step(batch_size=16)
        monitor.step(lr=0.1)
        opt.step()
        opt.zero_grad()
    monitor.close()
    measured = make_plan(read_measurement(tmp / "run" / "noise.jsonl"), examples=2e6, throughput=(5000.0, "examples"),
                         devices=4)
    assert "Recommended" in format_plan(measured)
    laws = make_plan(params=350e6, tokens=20e9, devices=8, throughput=(14000.0, "tokens"))
    for name, plan in (("plan-measured", measured), ("plan-laws", laws)):
        (tmp / name).mkdir()
        (tmp / name / "plan.json").write_text(json.dumps(plan))
    branched = {"kind": "branched", "method": "Merrill et al. 2025",
                "checkpoints": [{"step": 0, "examples": 0, "loss": 2.3, "b_crit": 8, "capped": False, "branches": []},
                                {"step": 100, "examples": 800, "loss": 0.5, "b_crit": 64, "capped": True, "branches": []}]}
    (tmp / "branched").mkdir()
    (tmp / "branched" / "branched.json").write_text(json.dumps(branched))
    return write_report([tmp / "plan-measured", tmp / "plan-laws", tmp / "branched"], tmp / "report.html")


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    return _report(tmp_path_factory.mktemp("browser"))


def _check(page, report: Path, width: int) -> dict:
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: requests.append(req.url) if not req.url.startswith(("file:", "data:")) else None)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    state = page.evaluate("""() => ({
        scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
        images: Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0]),
        firstH2: document.querySelector('h2').textContent,
        h2: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
        charts: document.querySelectorAll('.tw-chart svg').length})""")
    chart = page.locator(".tw-chart svg").first
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    state["tip"] = page.locator(".tw-tip").first.inner_text()
    state["errors"], state["requests"] = errors, requests
    return state


@pytest.mark.parametrize("width", [390, 1280])
def test_report_in_chromium(report_file, width):
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            state = _check(browser.new_page(), report_file, width)
        finally:
            browser.close()
    assert state["errors"] == [], state["errors"]
    assert state["requests"] == [], f"the report fetched {state['requests']}"
    assert state["images"] and all(ok for _, ok in state["images"]), state["images"]
    assert state["scrollWidth"] <= state["innerWidth"], f"page scrolls sideways: {state['scrollWidth']} > {state['innerWidth']}"
    assert state["firstH2"] == "Recommendation"
    assert len(set(state["h2"])) == len(state["h2"]), state["h2"]  # two plans, two distinct titles
    assert state["charts"] == 2
    assert "steps" in state["tip"] and "wall-clock" in state["tip"] and "batch" in state["tip"], state["tip"]
