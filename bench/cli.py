"""The measuring tools' command line: `python -m bench COMMAND`. Not part of the library: these
commands measure it (search quality, speed at scale, embedding backends) on data from ../shared/data.

    python -m bench eval --corpus ../shared/data/scifact/corpus.jsonl --queries ... --qrels ...
    python -m bench register                     # NASA's 2,101 lessons: sync, search and memory figures
    python -m bench register --sizes 1000,10000,100000 --server   # the scale benchmark
    python -m bench embedders                    # PyTorch, ONNX and ONNX int8 side by side
    python -m bench themes                       # suggested themes: leave-one-out precision@3
    python -m bench search-page                  # Search pressed to results on screen, in Chromium
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from kb.cli import echo_json, handle_errors
from kb.config import BACKENDS, Settings
from kb.search import MODES


@dataclass(frozen=True)
class BenchContext:
    settings: Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder for caches [KB_INDEX_DIR].")
@click.option("--model", help="sentence-transformers model name or path [KB_MODEL].")
@click.pass_context
def bench(ctx: click.Context, index_dir, model) -> None:
    """Measure Lighthouse: search quality, speed at scale and embedding backends.

    \b
    Example:
      python -m bench eval --corpus corpus.jsonl --queries queries.jsonl --qrels qrels/train.tsv
      python -m bench register --sizes 1000,10000 --no-browser
    """
    ctx.obj = BenchContext(Settings().override(index_dir=index_dir, model=model))


@bench.command(name="eval")
@click.option(
    "--corpus",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="BEIR corpus.jsonl (_id, title, text).",
)
@click.option(
    "--queries",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="BEIR queries.jsonl (_id, text).",
)
@click.option(
    "--qrels",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Judgements TSV with a header: query-id, corpus-id, score.",
)
@click.option("--mode", type=click.Choice([*MODES, "all"]), default="all", show_default=True)
@click.option(
    "--index",
    "eval_index",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the embedded corpus is cached [default: INDEX/eval].",
)
@click.option("--fusion", type=click.Choice(["convex", "rrf"]), help="Hybrid fusion method [default: convex].")
@click.option("--alpha", type=click.FloatRange(0, 1), help="Weight of the vector score in convex fusion.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object keyed by mode.")
@click.pass_obj
@handle_errors
def evaluate(
    ctx: BenchContext,
    corpus: Path,
    queries: Path,
    qrels: Path,
    mode: str,
    eval_index: Path | None,
    fusion: str | None,
    alpha: float | None,
    as_json: bool,
) -> None:
    """Measure search quality on BEIR-format data: nDCG@10, Recall@100, MRR@10 and latency per mode.

    \b
    Example:
      python -m bench eval --corpus ../shared/data/scifact/corpus.jsonl \\
        --queries ../shared/data/scifact/queries.jsonl --qrels ../shared/data/scifact/qrels/train.tsv
    """
    from dataclasses import replace

    from tqdm import tqdm

    from bench.evaluation import evaluate as run_evaluation
    from bench.evaluation import load_beir, open_corpus_index
    from kb.embedder import make_embedder
    from kb.search import DEFAULT_FUSION

    dataset = load_beir(corpus, queries, qrels)
    if dataset.empty:
        shown = ", ".join(dataset.empty[:5]) + (" …" if len(dataset.empty) > 5 else "")
        click.echo(
            f"warning: {corpus.name}: {len(dataset.empty)} document(s) with neither title nor text left out: {shown}",
            err=True,
        )
    bar = None

    def progress(done: int, total: int) -> None:  # a bar only when something needs embedding
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="doc", desc="indexing corpus", file=sys.stderr, disable=as_json)
        bar.update(done - bar.n)

    kb = open_corpus_index(
        dataset,
        eval_index or ctx.settings.index_dir / "eval",
        make_embedder(ctx.settings.model, ctx.settings.model_backend),
        progress=progress,
    )
    if bar is not None:
        bar.close()
    chosen = DEFAULT_FUSION
    if fusion is not None:
        chosen = replace(chosen, method=fusion)
    if alpha is not None:
        chosen = replace(chosen, alpha=alpha)
    results = run_evaluation(kb, dataset, MODES if mode == "all" else (mode,), fusion=chosen)
    if as_json:
        echo_json(results)
        return
    click.echo(
        f"{len(dataset.queries)} queries, {len(dataset.corpus)} documents, model {kb.index.model}, "
        f"fusion {chosen.method}" + (f" (alpha {chosen.alpha})" if chosen.method == "convex" else "")
    )
    click.echo(f"{'mode':<8} {'nDCG@10':>8} {'R@100':>8} {'MRR@10':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for name, m in results.items():
        click.echo(
            f"{name:<8} {m['ndcg@10']:>8.4f} {m['recall@100']:>8.4f} {m['mrr@10']:>8.4f} "
            f"{m['p50_ms']:>8.1f} {m['p95_ms']:>8.1f}"
        )


def register_option(help_text: str):
    """The register a command reads (NASA's lessons from ../shared/data by default)."""
    return click.option(
        "--register",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default="../shared/data/nasa_llis/llis.xlsx",
        show_default=True,
        help=help_text,
    )


def work_dir_option(
    default: str,
    help_text: str = "Where the entries and index are kept between runs (the first run syncs for minutes).",
):
    """`--work-dir`: a folder a measuring command keeps between runs, so that only its first run syncs."""
    return click.option(
        "--work-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=default,
        show_default=True,
        help=help_text,
    )


JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")

SCIFACT_OPTION = click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default="../shared/data/scifact",
    show_default=True,
    help="A BEIR folder: corpus.jsonl, queries.jsonl, qrels/train.tsv.",
)
MAPPING_OPTION = click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default="mappings/nasa-llis.yaml",
    show_default=True,
    help="Its column mapping.",
)


@bench.command(name="register")
@register_option("A spreadsheet register to import and measure.")
@MAPPING_OPTION
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Scratch folder for the entries and index [default: a new temporary folder].",
)
@click.option(
    "--sizes",
    help="Comma-separated collection sizes recombined from the register, e.g. 1000,10000,100000: "
    "the scale benchmark (docs/performance.md). Without it, the register itself is measured.",
)
@click.option("--server", is_flag=True, help="With --sizes: measure a Chroma server on 127.0.0.1 in the same run.")
@click.option(
    "--real-up-to",
    type=int,
    default=1000,
    show_default=True,
    help="With --sizes: sizes up to this are embedded by the model; larger ones use derived vectors.",
)
@click.option(
    "--browser/--no-browser",
    default=True,
    show_default=True,
    help="With --sizes: time search results appearing in the app in headless Chromium.",
)
@click.option(
    "--overhead/--no-overhead",
    default=True,
    show_default=True,
    help="With --sizes: also measure a search's overhead on the register itself (`python -m bench overhead`).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the figures as JSON (with --sizes: {machine, sizes: one object per size, overhead}).",
)
@click.option("--markdown", is_flag=True, help="With --sizes: print the figures as a Markdown table.")
@click.pass_obj
@handle_errors
def register_command(
    ctx: BenchContext,
    register: Path,
    mapping: Path,
    work_dir: Path | None,
    sizes: str | None,
    server: bool,
    real_up_to: int,
    browser: bool,
    overhead: bool,
    as_json: bool,
    markdown: bool,
) -> None:
    """Measure sync throughput against the bare model, re-sync, search latency and memory.

    \b
    Example:
      python -m bench register                       # NASA's 2,101 lessons from ../shared/data
      python -m bench register --register my.xlsx --mapping my-mapping.yaml --json
      python -m bench register --sizes 1000,10000,100000 --server   # the scale benchmark
    """
    if sizes:
        from bench.scale import describe_machine, format_markdown, format_report, run_scale_bench

        try:
            counts = tuple(int(s.replace("_", "").replace(",", "")) for s in sizes.split(",") if s.strip())
        except ValueError:
            raise click.BadParameter(
                f"'{sizes}' is not a list of numbers, e.g. 1000,10000", param_hint="--sizes"
            ) from None
        if not counts or min(counts) < 1:
            raise click.BadParameter("sizes must be positive numbers, e.g. 1000,10000", param_hint="--sizes")
        results = run_scale_bench(
            register,
            mapping,
            sizes=counts,
            model=ctx.settings.model,
            server=server,
            work_dir=work_dir,
            real_up_to=real_up_to,
            browser=browser,
            log=lambda message: click.echo(message, err=True),
        )
        machine = describe_machine()
        overhead_figures = _overhead(ctx, register, mapping, work_dir) if overhead else None
        if as_json:
            click.echo(json.dumps({"machine": machine, "sizes": results, "overhead": overhead_figures}, indent=2))
            return
        click.echo(format_markdown(results, machine) if markdown else format_report(results, machine))
        if overhead_figures is not None:
            from bench.overhead import format_report as format_overhead

            click.echo("\nOverhead of a hybrid search on the register itself:\n" + format_overhead(overhead_figures))
        return

    from bench.register import format_report as format_single
    from bench.register import run_bench
    from kb.embedder import make_embedder

    figures = run_bench(
        register,
        mapping,
        work_dir=work_dir,
        embedder=make_embedder(ctx.settings.model, ctx.settings.model_backend),
        log=lambda message: click.echo(message, err=True),
    )
    click.echo(json.dumps(figures, indent=2) if as_json else format_single(figures))


def _overhead(ctx: BenchContext, register: Path, mapping: Path, work_dir: Path | None) -> dict:
    from bench.overhead import run_overhead_bench
    from kb.embedder import make_embedder

    return run_overhead_bench(
        register,
        mapping,
        work_dir=(work_dir / "overhead") if work_dir else Path(".lighthouse-bench/overhead"),
        model=make_embedder(ctx.settings.model, ctx.settings.model_backend),
        log=lambda message: click.echo(message, err=True),
    )


@bench.command(name="overhead")
@register_option("The register whose lessons are searched.")
@MAPPING_OPTION
@work_dir_option(".lighthouse-bench/overhead")
@click.option("--repeats", type=click.IntRange(1), default=5, show_default=True, help="Times each query is timed.")
@JSON_OPTION
@click.pass_obj
@handle_errors
def overhead_command(
    ctx: BenchContext, register: Path, mapping: Path, work_dir: Path, repeats: int, as_json: bool
) -> None:
    """What a hybrid search costs beyond embedding the query, against a plain NumPy and bm25s
    baseline, a plain Chroma query and LanceDB, at three filters, as ratios in one table.

    \b
    Example:
      python -m bench overhead                       # NASA's 2,100 lessons from ../shared/data
      python -m bench overhead --json
    """
    from bench.overhead import format_report as format_overhead
    from bench.overhead import run_overhead_bench
    from kb.embedder import make_embedder

    figures = run_overhead_bench(
        register,
        mapping,
        work_dir=work_dir,
        model=make_embedder(ctx.settings.model, ctx.settings.model_backend),
        repeats=repeats,
        log=lambda message: click.echo(message, err=True),
    )
    click.echo(json.dumps(figures, indent=2) if as_json else format_overhead(figures))


@bench.command(name="search-page")
@register_option("The register whose lessons are searched.")
@MAPPING_OPTION
@work_dir_option(".lighthouse-bench/search-page")
@click.option("--queries", type=click.IntRange(1), default=20, show_default=True, help="Searches timed.")
@JSON_OPTION
@click.pass_obj
@handle_errors
def search_page_command(
    ctx: BenchContext, register: Path, mapping: Path, work_dir: Path, queries: int, as_json: bool
) -> None:
    """Press Search, see results: p50 and p95 in the app in headless Chromium on a real register, and
    where the time goes (the server's script run, kb.browse.find in it, the browser's main thread).

    \b
    Example:
      python -m bench search-page                    # NASA's 2,100 lessons from ../shared/data
      python -m bench search-page --queries 40 --json
    """
    from bench.search_page import format_report, run_search_page_bench

    figures = run_search_page_bench(
        register,
        mapping,
        work_dir=work_dir,
        model=ctx.settings.model,
        backend=ctx.settings.model_backend,
        queries=queries,
        log=lambda message: click.echo(message, err=True),
    )
    click.echo(json.dumps(figures, indent=2) if as_json else format_report(figures))


@bench.command(name="cli")
@register_option("The register whose lessons the commands read.")
@MAPPING_OPTION
@work_dir_option(
    ".lighthouse-bench/overhead", "Where the entries and index are kept between runs (shared with `overhead`)."
)
@click.option("--repeats", type=click.IntRange(1), default=5, show_default=True, help="Times each command runs.")
@JSON_OPTION
@click.pass_obj
@handle_errors
def cli_command(ctx: BenchContext, register: Path, mapping: Path, work_dir: Path, repeats: int, as_json: bool) -> None:
    """Whole `python -m kb` processes, start to exit (show, check, stats, search, similar), beside an
    empty Python process, with the median's ratio to it and the targets.

    \b
    Example:
      python -m bench cli                            # NASA's 2,100 lessons from ../shared/data
      python -m bench cli --repeats 10 --json
    """
    from bench.overhead import prepare
    from bench.processes import first_entry, format_report, run_process_bench
    from kb.embedder import make_embedder

    log = lambda message: click.echo(message, err=True)  # noqa: E731
    settings = prepare(register, mapping, work_dir, make_embedder(ctx.settings.model, ctx.settings.model_backend), log)
    figures = run_process_bench(settings, first_entry(settings.entries_dir), repeats=repeats, log=log)
    click.echo(json.dumps(figures, indent=2) if as_json else format_report(figures))


@bench.command(name="relevance")
@SCIFACT_OPTION
@click.option(
    "--entries",
    "entries_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default="entries",
    show_default=True,
    help="The sample entries the questions are asked of.",
)
@work_dir_option(
    ".lighthouse-bench/relevance",
    "Where the corpus index is cached between runs (the first run embeds it for minutes).",
)
@JSON_OPTION
@click.pass_obj
@handle_errors
def relevance_command(ctx: BenchContext, data: Path, entries_dir: Path, work_dir: Path, as_json: bool) -> None:
    """Where a close match begins: at each candidate similarity threshold, how many relevant documents
    of SciFact's training claims and questions about the samples are called close, and how many
    nonsense queries are.

    \b
    Example:
      python -m bench relevance
    """
    from bench.evaluation import load_beir, open_corpus_index
    from bench.relevance import format_report, run_relevance_bench, samples_index
    from kb.embedder import make_embedder

    model = make_embedder(ctx.settings.model, ctx.settings.model_backend)
    train = load_beir(data / "corpus.jsonl", data / "queries.jsonl", data / "qrels" / "train.tsv")
    click.echo("indexing the corpus (minutes the first time) and the samples ...", err=True)
    scifact = open_corpus_index(train, work_dir / "scifact", model)
    figures = run_relevance_bench(scifact, train, samples_index(entries_dir, work_dir, model))
    click.echo(json.dumps(figures, indent=2) if as_json else format_report(figures))


@bench.command(name="embedders")
@SCIFACT_OPTION
@click.option(
    "--backend", "backends", multiple=True, type=click.Choice(BACKENDS), help="Repeat to pick [default: all]."
)
@click.option("--passages", type=click.IntRange(1), default=256, show_default=True, help="Passages timed per round.")
@click.option("--rounds", type=click.IntRange(1), default=3, show_default=True, help="Interleaved timing rounds.")
@click.option("--max-queries", type=click.IntRange(1), help="Evaluate only the first N queries (quick run).")
@click.option("--corpus-limit", type=click.IntRange(1), help="Keep the judged documents and others up to N.")
@click.option(
    "--index",
    "bench_index",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where each backend's corpus index is cached [default: INDEX/embedder-bench].",
)
@JSON_OPTION
@click.pass_obj
@handle_errors
def embedders_command(
    ctx: BenchContext,
    data: Path,
    backends: tuple[str, ...],
    passages: int,
    rounds: int,
    max_queries: int | None,
    corpus_limit: int | None,
    bench_index: Path | None,
    as_json: bool,
) -> None:
    """Compare the model's backends (torch, onnx, onnx-int8): throughput and nDCG@10, side by side.

    \b
    Example:
      python -m bench embedders                       # full SciFact: several minutes per backend
      python -m bench embedders --max-queries 50 --corpus-limit 500 --passages 64
    """
    from bench.embedders import format_report, run_embedder_bench, subset
    from bench.evaluation import load_beir

    dataset = subset(
        load_beir(data / "corpus.jsonl", data / "queries.jsonl", data / "qrels" / "train.tsv"),
        max_queries,
        corpus_limit,
    )
    figures = run_embedder_bench(
        dataset,
        bench_index or ctx.settings.index_dir / "embedder-bench",
        backends=backends or BACKENDS,
        model=ctx.settings.model,
        passages=passages,
        rounds=rounds,
        log=lambda message: click.echo(message, err=True),
    )
    click.echo(json.dumps(figures, indent=2) if as_json else format_report(figures))


@bench.command(name="themes")
@click.option(
    "--entries",
    "entries_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default="entries",
    show_default=True,
    help="The sample entries the suggestions are measured on.",
)
@work_dir_option(".lighthouse-bench/themes", "Where the samples' index is built (afresh on every run).")
@JSON_OPTION
@click.pass_obj
@handle_errors
def themes_command(ctx: BenchContext, entries_dir: Path, work_dir: Path, as_json: bool) -> None:
    """Suggested themes: leave-one-out precision@3 over the sample entries, for the themes' descriptions
    only, the entries already tagged only, and their combination, beside the most used themes.

    \b
    Example:
      python -m bench themes
    """
    from bench.relevance import samples_index
    from bench.themes import format_report, run_theme_bench
    from kb.embedder import make_embedder

    model = make_embedder(ctx.settings.model, ctx.settings.model_backend)
    figures = run_theme_bench(samples_index(entries_dir, work_dir, model))
    click.echo(json.dumps(figures, indent=2) if as_json else format_report(figures))


def main() -> None:
    bench(prog_name="python -m bench")
