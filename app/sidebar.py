"""The sidebar: progress, the team's answers and agreement, the model version, the
learning curve and the stopping signal. It polls the feed every few seconds."""

from __future__ import annotations

import altair as alt
import streamlit as st
from spacy_al.app.views.widgets import alert, esc

from spacy_al.serve.feed import Feed
from spacy_al.serve.progress import MIN_CURVE_EXAMPLES

REFRESH_SECONDS = 2.0  # how often the sidebar polls progress and the curve
CHART_HEIGHT = 200
# Readable in a sidebar: larger axis text, titles on lines of their own.
CHART_CONFIG = {
    "axis": {"labelFontSize": 12, "titleFontSize": 12},
    "title": {"fontSize": 13, "anchor": "start", "offset": 6},
}


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def agreement_block(stats: dict) -> None:
    """With overlap >= 2: agreement with the consensus and the conflicts held."""
    found = stats.get("agreement")
    if not found or not found["n_shared"] or stats.get("overlap", 1) < 2:
        return
    st.html(
        '<div class="sal-you">Agreement: Fleiss κ '
        f"{esc(_fmt(found['fleiss_kappa']))} · Krippendorff α "
        f"{esc(_fmt(found['krippendorff_alpha']))} · {found['n_conflicts']} conflicts "
        f"({found.get('held', 0)} waiting for review) · {found['n_agreed']} agreed</div>"
    )
    if found["annotators"]:
        st.dataframe(
            [
                {
                    "annotator": name,
                    "kappa": None if a["kappa"] is None else round(a["kappa"], 2),
                    "n": a["n"],
                }
                for name, a in found["annotators"].items()
            ],
            hide_index=True,
            width="stretch",
        )


def next_update(stats: dict) -> str:
    """When the model learns next, as a sentence whose count never exceeds its total.

    Answers arrive while the model trains, and with an overlap of 2 or more an
    example is learnt only once its annotators agree, so the queue can hold more
    examples than a batch."""
    pending, batch = stats["pending"], stats["batch_size"]
    if stats["training"]:
        return "Learning from the last batch…" + (
            f" ({pending} answered examples queued for the next one)" if pending else ""
        )
    if stats.get("overlap", 1) > 1:
        return (
            f"Next update: once {batch} examples have {stats['overlap']} agreeing "
            f"answers ({pending} answered examples since the last update)."
        )
    if pending >= batch:
        return "Next update: starting now."
    return f"Next update after {batch} answers: {pending} of {batch} so far."


def _title(*lines: str) -> dict:
    return {"text": list(lines)}


@st.cache_data(max_entries=16, show_spinner=False)
def curve_spec(
    points: tuple[tuple[int, int, float], ...],
    kind: str,
    metric: str = "macro F1",
    right: int = 10,
) -> dict:
    """The learning curve as a Vega-Lite spec, made with altair once per curve
    (altair's validation takes ~60 ms: too slow for every rerun of every session).
    The x axis runs to ``right`` answers at least (to line up with the stability
    chart). The title is two short lines, so that a sidebar never cuts it off."""
    name = metric[:1].upper() + metric[1:]
    title = (
        _title(f"{name} on the eval set")
        if kind == "eval"
        else _title(f"{name} on new answers", "(each batch, before learning it)")
    )
    values = [{"answers": a, "version": v, "score": f} for a, v, f in points]
    right = max(right, 10, max(a for a, _, _ in points))
    chart = (
        alt.Chart(alt.Data(values=values), title=alt.Title(**title))
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "answers:Q",
                title="answers",
                scale=alt.Scale(domain=[0, right]),
                axis=alt.Axis(format="d"),
            ),
            y=alt.Y("score:Q", title=metric, scale=alt.Scale(domain=[0, 1])),
            tooltip=["answers:Q", "version:Q", "score:Q"],
        )
        .properties(height=CHART_HEIGHT)
    )
    return {**chart.to_dict(), "config": CHART_CONFIG}


@st.cache_data(max_entries=16, show_spinner=False)
def stability_spec(
    points: tuple[tuple[int, int, float], ...], threshold: float, right: int = 10
) -> dict:
    """The stopping signal as a Vega-Lite spec: each update's agreement (kappa) with
    the model before it, on the stop set, over answers; the threshold dashed."""
    values = [{"answers": a, "version": v, "kappa": k} for a, v, k in points]
    right = max(right, 10, max(a for a, _, _ in points))
    low = min(0.0, min(k for _, _, k in points))
    x = alt.X(
        "answers:Q",
        title="answers",
        scale=alt.Scale(domain=[0, right]),
        axis=alt.Axis(format="d"),
    )
    line = (
        alt.Chart(alt.Data(values=values))
        .mark_line(point=True, color="#7c3aed")
        .encode(
            x=x,
            y=alt.Y("kappa:Q", title="kappa", scale=alt.Scale(domain=[low, 1])),
            tooltip=["answers:Q", "version:Q", "kappa:Q"],
        )
    )
    rule = (
        alt.Chart(alt.Data(values=[{"threshold": threshold}]))
        .mark_rule(strokeDash=[4, 4], color="#6b7280")
        .encode(y="threshold:Q")
    )
    title = alt.Title(
        text=["Do predictions still change?"],
        subtitle=["each model vs the one before (1 = same)"],
    )
    chart = alt.layer(line, rule, title=title).properties(height=CHART_HEIGHT - 40)
    return {**chart.to_dict(), "config": CHART_CONFIG}


def stopping_sentence(stopping: dict) -> tuple[str, str]:
    """What the stopping signal says, as a sentence a team lead acts on, and the
    alert kind to show it in."""
    window, threshold = stopping["window"], stopping["threshold"]
    mean = stopping["mean_kappa"]
    how = (
        f"Agreement between successive models' predictions on "
        f"{stopping['stop_set_size']} texts, averaged over the last {window} updates."
    )
    if stopping["should_stop"]:
        return (
            "Predictions have stopped changing: consider stopping "
            f"({mean:.3f} of {threshold:g}). {how}",
            "success",
        )
    if stopping["stopped_at"] is not None:
        at = stopping["stopped_at"]
        return (
            f"Predictions had stopped changing at {at['answers']} answers (model "
            f"v{at['version']}) and have changed since: {mean:.3f} of {threshold:g}. "
            f"{how}",
            "info",
        )
    if mean is not None:
        return f"Predictions are still changing: {mean:.3f} of {threshold:g}. {how}", (
            "info"
        )
    n = len(stopping["points"])
    return (
        f"Too early to say when to stop: the signal compares {window} model updates "
        f"with the ones before them ({n} of {window} so far).",
        "info",
    )


def stopping_signal(stopping: dict, right: int) -> None:
    """Stabilizing predictions: the chart and what it says (stop or not)."""
    points = stopping["points"]
    if points:
        st.vega_lite_chart(
            spec=stability_spec(
                tuple((p["answers"], p["version"], p["kappa"]) for p in points),
                stopping["threshold"],
                right,
            ),
            width="stretch",
        )
    if not stopping["stop_set_size"]:
        return
    text, kind = stopping_sentence(stopping)
    alert(text, kind)


@st.fragment(run_every=REFRESH_SECONDS)
def sidebar(feed: Feed, who: str) -> None:
    """Progress, per-annotator counts, model version, the learning curve and the
    stopping signal."""
    feed.touch(who)
    stats = feed.stats(who)
    total = max(stats["total"], 1)
    done = min(stats["done"], stats["total"])
    review = stats["view_id"] == "review"  # nothing is trained while reviewing
    st.progress(
        min(done / total, 1.0),
        text=f"{done} / {stats['total']} examples "
        + ("reviewed" if review else "answered"),
    )
    if not review:
        st.metric(
            "Model version",
            stats["version"],
            help="Goes up after every batch of answers",
        )
        st.html(f'<div class="sal-you">{esc(next_update(stats))}</div>')
    if stats["annotators"]:
        st.dataframe(
            [
                {"annotator": name, "answers": n}
                for name, n in stats["annotators"].items()
            ],
            hide_index=True,
            width="stretch",
        )
    agreement_block(stats)
    stopping = stats.get("stopping")
    # Both charts run to the same number of answers, so that they line up.
    right = max(
        [p["answers"] for p in stats["curve"]]
        + [p["answers"] for p in (stopping or {}).get("points", [])]
        + [10]
    )
    if stats["curve"]:
        points = tuple((p["answers"], p["version"], p["score"]) for p in stats["curve"])
        st.vega_lite_chart(
            spec=curve_spec(
                points,
                stats["curve_kind"],
                stats.get("curve_metric", "macro F1"),
                right,
            ),
            width="stretch",
        )
        last = stats["curve"][-1]
        metric = stats.get("curve_metric", "macro F1")
        n = len(stats["curve"])
        st.html(
            f'<div class="sal-you sal-curve">Last: {esc(metric)} {last["score"]:.2f} '
            f"at {last['answers']} answers (model v{last['version']}); "
            f"{n} point{'s' if n != 1 else ''}.</div>"
        )
    elif stats["curve_kind"] is not None:
        st.html(
            '<div class="sal-you">The learning curve starts once the model has '
            f"learnt and {MIN_CURVE_EXAMPLES} new answers test it.</div>"
        )
    if stopping is not None:
        stopping_signal(stopping, right)
    if stats["error"]:
        alert(stats["error"], "error")
    if st.session_state.get("waiting") and feed.has_task(who):
        st.rerun()  # something to label now: show it
