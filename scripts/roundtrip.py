"""Key press → next example round-trip time in a real browser, 1 and N annotators.

    python scripts/roundtrip.py [--answers 50] [--annotators 1 5]

Starts ``python -m spacy_al demo`` on a free port with a throwaway database; each
annotator is a separate browser context (``?session=annotatorK``) of one headless
Chromium, answering with the keyboard only (a / x / Space in turn), all at the same
time (asyncio). The time is measured from the key press until the page shows the
annotator's answer count go up (the next example is rendered in the same script
run). Server, browser and annotators share this machine's cores. Prints median,
p95 and max per setting, and whether any example was shown twice.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshots import CHROMIUM, CHROMIUM_ARGS, IDLE, serve  # noqa: E402

KEYS = ["a", "x", "Space"]
COUNT = "n => document.querySelector('.sal-count')?.textContent === n"


async def annotate(browser, url: str, name: str, n: int, out: dict) -> None:
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    context = await browser.new_context(viewport={"width": 1200, "height": 1000})
    page = await context.new_page()
    await page.goto(f"{url}/?session={name}", timeout=120_000)
    await page.locator(".sal-text").wait_for(timeout=120_000)
    await page.wait_for_selector(IDLE)
    # The buttons' code loads lazily: wait until they and their key bindings are in.
    await page.get_by_role("button", name="Ignore").wait_for(timeout=120_000)
    await page.evaluate(
        "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
    )
    for i in range(n):
        text = await page.locator(".sal-text").inner_text()
        count = int(await page.locator(".sal-count").inner_text())
        out["texts"].append(text)
        await page.locator(".sal-head").first.click()
        start = time.perf_counter()
        await page.keyboard.press(KEYS[i % len(KEYS)])
        try:
            await page.wait_for_function(COUNT, arg=str(count + 1), timeout=10_000)
        except PlaywrightTimeout:  # a dropped key press: not timed, pressed again
            out["stalls"].append(f"{name} answer {i}: count stayed {count}")
            out["texts"].pop()
            await page.keyboard.press(KEYS[i % len(KEYS)])
            await page.wait_for_function(COUNT, arg=str(count + 1), timeout=30_000)
            await page.wait_for_selector(IDLE)
            continue
        out["times"].append(time.perf_counter() - start)
        await page.wait_for_selector(IDLE)
    await context.close()


async def measure(url: str, n_annotators: int, n_answers: int, offset: int) -> dict:
    from playwright.async_api import async_playwright

    out: dict = {"times": [], "texts": [], "stalls": []}
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        await asyncio.gather(
            *(
                annotate(browser, url, f"annotator{offset + k}", n_answers, out)
                for k in range(n_annotators)
            )
        )
        await browser.close()
    times = sorted(out["times"])
    return {
        "annotators": n_annotators,
        "answers": len(times),
        "median_s": round(statistics.median(times), 3),
        "p95_s": round(times[max(round(0.95 * len(times)) - 1, 0)], 3),
        "max_s": round(times[-1], 3),
        "examples_shown_twice": len(out["texts"]) - len(set(out["texts"])),
        "stalls": out["stalls"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=50, help="answers per annotator")
    parser.add_argument("--annotators", type=int, nargs="+", default=[1, 5])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="spacy_al_rt_"))
    with serve(["demo", "--db", str(tmp / "rt.db")], log=tmp / "server.log") as url:
        offset = 0
        for n in args.annotators:
            print(asyncio.run(measure(url, n, args.answers, offset)), flush=True)
            offset += n
    print(f"server log: {tmp / 'server.log'}")


if __name__ == "__main__":
    main()
