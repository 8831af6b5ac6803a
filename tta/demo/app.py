"""The Gradio page: a thin layout over :mod:`tta.demo.handlers` (which runs :class:`~tta.pipelines.TTAPipeline`).

Tabs for text-to-audio and the three edits, one shared settings row (model, negative prompt, steps, guidance,
seed) and one shared result area (audio player, spectrogram, settings and the CLI line). Requests go through
Gradio's queue with a concurrency limit; bad input shows as a readable error in the page.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tta.demo.handlers import DemoResult, run_edit, run_generate
from tta.demo.models import ModelCache, list_adapters, list_models
from tta.editing.inputs import MAX_UPLOAD_BYTES
from tta.errors import TTAError
from tta.pipelines.checks import RANGES
from tta.sampling.shapes import MAX_DURATION_S

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
NO_ADAPTER = "(no adapter)"


def _gradio():
    try:
        import gradio as gr
    except ImportError as err:  # optional dependency
        raise TTAError("the demo needs Gradio: pip install 'tta[demo]' (or pip install gradio)") from err
    return gr


def _page(
    handler: Callable[..., DemoResult], cache: ModelCache, default: str | None, inputs: int | None = None
) -> Callable[..., tuple]:
    """Wrap a handler for Gradio: first argument the model folder (``default`` when none is chosen), then the
    handler's ``inputs`` values, then the LoRA adapter (``NO_ADAPTER``: none) and its scale, which may be left out
    (they come last so that API calls written before adapters existed still fit; ``inputs=None``: the page has
    no adapter row); tta errors become ``gr.Error`` messages in the page."""
    gr = _gradio()

    def run(model: str | None, *args: Any) -> tuple:
        adapter, scale = (args[inputs:] + (None, None))[:2] if inputs is not None else (None, None)
        args = args[:inputs] if inputs is not None else args
        lora = None if adapter in (None, "", NO_ADAPTER) else adapter
        try:
            with cache.use(model or default, lora, float(scale if scale is not None else 1.0)) as pipe:
                result = handler(pipe, *args)
        except TTAError as err:
            raise gr.Error(str(err), print_exception=False) from None
        return (result.sample_rate, result.audio), result.image, result.settings, result.cli

    return run


def build_demo(
    models: list[str] | None = None,
    cache: ModelCache | None = None,
    concurrency_limit: int = 2,
    max_duration_s: float = MAX_DURATION_S,
    retrieval: str | None = None,
    adapters: list[str] | None = None,
):
    """The ``gr.Blocks`` page (queued, at most ``concurrency_limit`` requests running at once; requests share the
    loaded pipeline and pass their own settings, so they run side by side).

    Args:
        models: model folders for the dropdown (default: :func:`tta.demo.list_models`); the first is selected.
        cache: where pipelines are loaded and kept (default: a new CPU cache).
        max_duration_s: the longest audio the page generates (default the core's limit; a server may offer less).
        retrieval: a retrieval index folder (``tta index build``) that retrieval-conditioned models may use; the
            Generate tab then offers it (loaded once, here).
        adapters: LoRA adapter files (``tta finetune``) offered in a dropdown, applied per request
            (:meth:`ModelCache.use`); none: no dropdown.
    """
    gr = _gradio()
    models = list_models() if models is None else list(models)
    cache = cache or ModelCache()
    index = None
    if retrieval is not None:
        from tta.retrieval import RetrievalIndex

        index = RetrievalIndex.load(retrieval)
    default = models[0] if models else None
    with gr.Blocks(title="tta: text to audio") as demo:
        gr.Markdown("# tta: text-to-audio\nGenerate audio from text, or edit a recording you upload.")
        if not models:
            gr.Markdown(
                "**No model found.** There is no trained default model yet: start the demo with "
                "`tta demo --model PATH` (a tta or diffusers AudioLDM folder)."
            )
        model, shared = _settings_row(gr, models, default)
        lora = _adapter_row(gr, adapters or [])
        with gr.Tabs():
            actions = [_generate_tab(gr, shared, index, max_duration_s), *_edit_tabs(gr, shared)]
        outputs = _result_area(gr)
        for button, handler, inputs, name in actions:
            button.click(
                _page(handler, cache, default, len(inputs)),
                [model, *inputs, *lora],
                outputs,
                api_name=name,
                concurrency_limit=concurrency_limit,
            )
    demo.queue(default_concurrency_limit=concurrency_limit, max_size=64)
    demo.model_cache = cache  # one per page: the model loads once per process
    return demo


def _settings_row(gr, models: list[str], default: str | None):
    """The model dropdown and the settings every tab shares: negative prompt, steps, guidance, seed."""
    from tta.demo.models import sampling_defaults

    default_steps, default_guidance = sampling_defaults(default)
    with gr.Row():
        model = gr.Dropdown(models, value=default, label="Model folder")
        negative = gr.Textbox(label="Negative prompt", placeholder="low quality, noise")
    with gr.Row():
        steps = gr.Slider(*RANGES["steps"], value=default_steps, step=1, label="Steps", elem_id="steps")
        guidance = gr.Slider(
            *RANGES["guidance"], value=default_guidance, step=0.1, label="Guidance", elem_id="guidance"
        )
        seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)")
    model.change(lambda folder: sampling_defaults(folder or default), [model], [steps, guidance])
    return model, [negative, steps, guidance, seed]


def _adapter_row(gr, adapters: list[str]) -> list:
    """The LoRA adapter dropdown and its scale (hidden when there are no adapters)."""
    with gr.Row(visible=bool(adapters)):
        choices = [NO_ADAPTER, *adapters]
        adapter = gr.Dropdown(choices, value=NO_ADAPTER, label="LoRA adapter (tta finetune)", elem_id="lora")
        scale = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Adapter scale", elem_id="lora-scale")
    return [adapter, scale]


def _generate_tab(gr, shared: list, index, max_duration_s: float) -> tuple:
    """The Generate tab; returns its (button, handler, inputs, API name)."""
    negative, steps, guidance, seed = shared
    with gr.Tab("Generate"):
        prompt = gr.Textbox(label="Prompt", placeholder="a dog barks in the rain", elem_id="prompt")
        with gr.Row():
            duration = gr.Slider(0.5, max_duration_s, value=5.0, step=0.5, label="Duration (s)", elem_id="duration")
            candidates = gr.Slider(*RANGES["candidates"], value=1, step=1, label="Candidates (best by CLAP)")
        with gr.Row(visible=index is not None):
            use_index = gr.Checkbox(
                value=index is not None,
                label=f"Retrieve neighbours from {Path(index.folder).name if index else 'an index'}",
                elem_id="use-retrieval",
            )
            top_k = gr.Slider(0, RANGES["top_k"][1], value=0, step=1, label="Neighbours (0: the model's)")
        button = gr.Button("Generate", variant="primary", elem_id="generate")
    handler = functools.partial(_generate, index=index, max_duration_s=max_duration_s)
    inputs = [prompt, negative, duration, steps, guidance, seed, candidates, use_index, top_k]
    return button, handler, inputs, "generate"


def _edit_tabs(gr, shared: list) -> list[tuple]:
    """The style transfer, inpainting and super-resolution tabs; returns their (button, handler, inputs, name)."""
    from tta.pipelines import SUPER_RESOLUTION_PROMPT

    with gr.Tab("Style transfer"):
        style_in = _upload(gr)
        style_prompt = gr.Textbox(label="Prompt")
        style_strength = gr.Slider(*RANGES["strength"], value=0.6, step=0.05, label="Strength (0: keep, 1: replace)")
        style_button = gr.Button("Transfer", variant="primary")
    with gr.Tab("Inpainting"):
        inpaint_in = _upload(gr)
        inpaint_prompt = gr.Textbox(label="Prompt for the regenerated parts")
        ranges = gr.Textbox(label="Time ranges to regenerate (s)", placeholder="1.0:2.5, 4:5")
        inpaint_strength = gr.Slider(*RANGES["strength"], value=1.0, step=0.05, label="Strength")
        inpaint_button = gr.Button("Inpaint", variant="primary")
    with gr.Tab("Super-resolution"):
        sr_in = _upload(gr)
        sr_prompt = gr.Textbox(label="Prompt", value=SUPER_RESOLUTION_PROMPT)
        cutoff = gr.Number(value=0, label="Cut-off (Hz, 0: detect from the input)")
        sr_strength = gr.Slider(
            *RANGES["strength"], value=1.0, step=0.05, label="Strength (lower keeps more of the input)"
        )
        sr_button = gr.Button("Extend bandwidth", variant="primary")
    return [
        (style_button, _style, [style_in, style_prompt, *shared, style_strength], "style"),
        (inpaint_button, _inpaint, [inpaint_in, inpaint_prompt, *shared, inpaint_strength, ranges], "inpaint"),
        (sr_button, _superres, [sr_in, sr_prompt, *shared, cutoff, sr_strength], "superres"),
    ]


def _result_area(gr) -> list:
    """The shared result: audio player, spectrogram, settings used and the CLI line."""
    audio = gr.Audio(
        label="Result",
        type="numpy",
        format="wav",
        interactive=False,
        elem_id="result-audio",
        waveform_options=gr.WaveformOptions(show_recording_waveform=False),  # the browser's own <audio> player
    )
    image = gr.Image(label="Log-mel spectrogram", type="numpy", interactive=False, elem_id="spectrogram")
    with gr.Row():
        settings = gr.JSON(label="Settings used")
        cli = gr.Textbox(label="Command line", buttons=["copy"], interactive=False, elem_id="cli")
    return [audio, image, settings, cli]


def _generate(
    pipe, prompt, negative, duration, steps, guidance, seed, candidates, use_index=False, top_k=0, index=None, **kw
) -> DemoResult:
    retrieval = index if use_index and index is not None else None
    return run_generate(
        pipe, prompt, negative, duration, steps, guidance, seed, candidates, retrieval=retrieval, top_k=top_k, **kw
    )


def _style(pipe, upload, prompt, negative, steps, guidance, seed, strength) -> DemoResult:
    return run_edit(pipe, "style", upload, prompt, negative, steps, guidance, seed, strength)


def _inpaint(pipe, upload, prompt, negative, steps, guidance, seed, strength, ranges) -> DemoResult:
    return run_edit(pipe, "inpaint", upload, prompt, negative, steps, guidance, seed, strength, ranges=ranges)


def _superres(pipe, upload, prompt, negative, steps, guidance, seed, cutoff_hz, strength) -> DemoResult:
    return run_edit(pipe, "superres", upload, prompt, negative, steps, guidance, seed, strength, cutoff_hz=cutoff_hz)


def _upload(gr):
    return gr.Audio(label="Audio to edit (up to 60 s)", sources=["upload"], type="filepath", format=None)


def launch(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    model: str | None = None,
    models_dir: str | None = None,
    device: str = "cpu",
    concurrency_limit: int = 2,
    block: bool = True,
    retrieval: str | None = None,
    adapters_dir: str | None = None,
):
    """Serve the demo (localhost by default); ``model`` is listed first and loaded once, at start; ``retrieval``
    is an index folder offered to retrieval-conditioned models; ``adapters_dir`` a folder of LoRA adapters."""
    models = list_models([model] if model else [], root=models_dir)
    adapters = list_adapters(adapters_dir)
    if adapters_dir and not adapters:
        raise TTAError(f"--adapters {adapters_dir}: no tta LoRA adapter (.safetensors from tta finetune) there")
    cache = ModelCache(device)
    if models:
        cache.get(models[0])  # load now: the first request does not wait, and a broken model fails at start
    demo = build_demo(models, cache, concurrency_limit, retrieval=retrieval, adapters=adapters)
    demo.launch(
        server_name=host,
        server_port=port,
        max_file_size=MAX_UPLOAD_BYTES,
        show_error=False,
        prevent_thread_lock=not block,
        quiet=True,
    )
    return demo
