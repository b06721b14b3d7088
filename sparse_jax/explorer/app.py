"""The explorer's page: Gradio Blocks over `engine.Explorer`, served on 127.0.0.1 only.

Offline by construction: system fonts only (no web-font host), no share link, analytics off, no
server-side rendering (no Node process), every script and stylesheet from Gradio's own package.
One event listener (`gr.on` over every control, trigger_mode "always_last") renders a move: while
a slider is dragged the newest position wins, and the page shows Gradio's busy state (a spinner
and timer on the image) while a large generator works.

    page = Page(explorer, "exports")
    demo = page.build()
    app, url, _ = launch(demo, port=7860, export_dir="exports", block=False)
"""
from __future__ import annotations

import html
import os
import threading
from typing import Any, Sequence

import numpy as np

from sparse_jax.explorer.engine import SIGMA_LIMIT, Explorer, Slider

# Read by Gradio when it builds and launches: no telemetry requests (the page must work offline).
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

SANS = ("system-ui", "DejaVu Sans", "Liberation Sans", "Arial", "sans-serif")
MONO = ("ui-monospace", "DejaVu Sans Mono", "Liberation Mono", "monospace")
CSS = """
#img0 img, #img1 img {image-rendering: pixelated; object-fit: contain; width: 100%; height: 100%}
.sj-bars {font-size: 13px; width: 100%}
.sj-bars .row {display: grid; grid-template-columns: 6.5em 1fr 7.5em; gap: 6px;
  align-items: center; margin: 3px 0}
.sj-bars .tracks {display: flex; flex-direction: column; gap: 2px}
.sj-bars .ps {display: flex; gap: 0.6em; justify-content: flex-end}
.sj-bars .track {position: relative; height: 7px; background: #e5e7eb; border-radius: 2px}
.sj-bars .fill {position: absolute; left: 0; top: 0; bottom: 0; border-radius: 2px}
.sj-bars .f0 {background: #2563eb} .sj-bars .f1 {background: #ea580c}
.sj-bars .mark {position: absolute; top: -3px; bottom: -3px; width: 2px; background: #111827}
.sj-bars .legend span {margin-right: 1.2em} .sj-bars .sw {display: inline-block; width: 10px;
  height: 10px; margin-right: 4px; vertical-align: -1px}
.sj-bars .p {font-family: ui-monospace, 'DejaVu Sans Mono', monospace}
.sj-bars .p1 {color: #c2410c} .sj-bars .p0 {color: #1d4ed8}
"""


def _theme():
    import gradio as gr

    # Strings are system fonts: the theme emits no @font-face and no stylesheet link.
    return gr.themes.Base(primary_hue="blue", font=list(SANS), font_mono=list(MONO))


def bars_html(attributes: Sequence[str], predictions: Sequence[dict[str, float]],
              base: dict[str, float], names: Sequence[str]) -> str:
    """The classifier's probabilities as a bar chart (server-side HTML): a row per attribute
    with one bar per image (edit, comparison) and a black tick at the unedited seed's value."""
    if not attributes:
        return '<div class="sj-bars">no classifier (--noclassifier)</div>'
    colours = ("#2563eb", "#ea580c")
    legend = "".join(f'<span><i class="sw" style="background:{colours[i]}"></i>'
                     f'{html.escape(n)}</span>' for i, n in enumerate(names))
    rows = []
    for a in attributes:
        mark = f'<div class="mark" style="left:calc({100.0 * base[a]:.1f}% - 1px)"></div>'
        tracks = "".join(f'<div class="track">{mark}<div class="fill f{i}" style="width:'
                         f'{100 * pred[a]:.1f}%"></div></div>'
                         for i, pred in enumerate(predictions))
        values = "".join(f'<span class="p p{i}">{pred[a]:.3f}</span>'
                         for i, pred in enumerate(predictions))
        rows.append(f'<div class="row" data-attr="{html.escape(a)}"><span class="name">'
                    f'{html.escape(a)}</span><div class="tracks">{tracks}</div>'
                    f'<div class="ps">{values}</div></div>')
    return (f'<div class="sj-bars"><div class="legend">{legend}<span>| unedited seed</span>'
            "</div>" + "".join(rows) + "</div>")


class Page:
    """The page's handlers over one Explorer; `build` lays the controls out.

    Control values arrive flat: seed, psi, compare, then (sigma, start, end) per slider in the
    order of `self.sliders` [(set, index)].
    """

    def __init__(self, explorer: Explorer, export_dir: str):
        self.explorer = explorer
        self.export_dir = export_dir
        self.info = explorer.info()
        self.sliders = [(si, i) for si, s in enumerate(self.info["sets"]) for i in range(s["k"])]
        self._lock = threading.Lock()  # one JAX call at a time (render and export)

    def parse(self, seed: Any, psi: Any, compare: Any, *values: Any
              ) -> tuple[int, float, list[Slider], int | None]:
        """Control values -> (seed, psi, the moved sliders, the comparison set or None)."""
        if len(values) != 3 * len(self.sliders):
            raise ValueError(f"expected {3 * len(self.sliders)} slider values, got {len(values)}")
        num_ws = self.info["num_ws"]
        moved = []
        for (si, i), sigma, start, end in zip(self.sliders, values[0::3], values[1::3],
                                              values[2::3], strict=True):
            if sigma is None or float(sigma) == 0.0:
                continue
            moved.append(Slider(si, i, float(sigma), 0 if start is None else int(start),
                                num_ws if end is None else int(end)))
        cmp = None if compare is None or int(compare) < 0 else int(compare)
        return int(seed or 0), 1.0 if psi is None else float(psi), moved, cmp

    def render(self, seed, psi, compare, *values):
        """The slider-to-image handler -> (edited image [H, W(, 3)] uint8, the comparison or
        None, W distance text, bars HTML)."""
        import gradio as gr

        try:
            seed, psi, moved, cmp = self.parse(seed, psi, compare, *values)
            with self._lock:
                out = self.explorer.render(seed, psi, moved, cmp)
        except ValueError as e:
            raise gr.Error(str(e), print_exception=False) from None
        imgs = [im[..., 0] if im.shape[-1] == 1 else im for im in out["images"]]
        sets = self.info["sets"]
        names = [sets[moved[0].set]["name"] if moved else "edit"]
        if cmp is not None:
            names.append(sets[cmp]["name"])
        return (imgs[0], imgs[1] if cmp is not None else None, f"{out['w_distance']:.3f}",
                bars_html(self.info["attributes"], out["predictions"], out["base"], names))

    def export(self, name, seed, psi, compare, *values):
        """-> (a line naming the written files, their paths for download)."""
        import gradio as gr

        try:
            seed, psi, moved, _ = self.parse(seed, psi, compare, *values)
            os.makedirs(self.export_dir, exist_ok=True)
            with self._lock:
                paths = self.explorer.export(self.export_dir, str(name or "").strip(), seed,
                                             psi, moved)
        except (ValueError, OSError) as e:
            raise gr.Error(str(e), print_exception=False) from None
        return "wrote " + ", ".join(paths), paths

    def build(self):
        """-> gr.Blocks: seed / random, truncation, side by side, a slider per direction with
        its ws-slot range, the images, W distance, bars and export."""
        import gradio as gr

        info, num_ws = self.info, self.info["num_ws"]
        lim = SIGMA_LIMIT
        with gr.Blocks(title="sparse-jax explorer", analytics_enabled=False) as demo:
            gr.Markdown(f"### sparse-jax explorer  ·  {info['resolution']} px, "
                        f"{num_ws} ws slots, w_dim {info['w_dim']}")
            controls = []
            with gr.Row():
                with gr.Column(scale=5):
                    with gr.Row():
                        seed = gr.Number(0, label="seed", precision=0, minimum=0,
                                         elem_id="seed", min_width=90)
                        rnd = gr.Button("random seed", elem_id="random", min_width=90)
                        psi = gr.Slider(0, 1, 1.0, step=0.05, label="truncation psi",
                                        elem_id="psi", min_width=160)
                    compare = gr.Dropdown(
                        [("off", -1)] + [(f"{s['name']} ({os.path.basename(s['path'])})", i)
                                         for i, s in enumerate(info["sets"])],
                        value=-1, label="side by side: the same seed and W distance along",
                        elem_id="compare")
                    controls = [seed, psi, compare]
                    defaults = []
                    for si, s in enumerate(info["sets"]):
                        units = "sigma" if s["units"] == "sigma" else "W distance"
                        with gr.Accordion(f"{s['name']}: {s['k']} directions ({units}, "
                                          f"ws slots [start, end))", open=si == 0):
                            for i in range(s["k"]):
                                lr = (s["layer_ranges"][i] if s["layer_ranges"]
                                      else [0, num_ws])
                                sg = float(s["sigmas"][i]) if s["sigmas"] else 0.0
                                with gr.Row(equal_height=True):
                                    controls.append(gr.Slider(
                                        -lim, lim, sg, step=0.1, label=s["labels"][i],
                                        elem_id=f"s_{si}_{i}", scale=5, min_width=180))
                                    controls.append(gr.Number(
                                        int(lr[0]), label="start", precision=0, minimum=0,
                                        maximum=num_ws - 1, elem_id=f"a_{si}_{i}", scale=1,
                                        min_width=64))
                                    controls.append(gr.Number(
                                        int(lr[1]), label="end", precision=0, minimum=1,
                                        maximum=num_ws, elem_id=f"b_{si}_{i}", scale=1,
                                        min_width=64))
                                defaults.append(0.0)
                    reset = gr.Button("all sliders to 0", elem_id="reset")
                with gr.Column(scale=6):
                    with gr.Row():
                        img0 = gr.Image(label="edit", type="numpy", format="png",
                                        interactive=False, height=256, elem_id="img0",
                                        buttons=[])
                        img1 = gr.Image(label="side by side", type="numpy", format="png",
                                        interactive=False, height=256, elem_id="img1",
                                        buttons=[], visible=False)
                    wdist = gr.Textbox(label="W distance moved (max over ws slots)",
                                       interactive=False, elem_id="wdist")
                    bars = gr.HTML(elem_id="bars", js_on_load=None)
                    with gr.Row():
                        name = gr.Textbox("edit", label="export name", elem_id="name",
                                          scale=3)
                        export = gr.Button("export PNG, ws .npy, direction file",
                                           elem_id="export", scale=2)
                    exported = gr.Textbox(label="exported", interactive=False,
                                          elem_id="exported")
                    files = gr.File(label="download", file_count="multiple",
                                    interactive=False, elem_id="files")

            outputs = [img0, img1, wdist, bars]
            sliders = controls[3::3]
            triggers = [seed.change, psi.change, compare.change] + [
                c.change for c in controls[3:]]
            gr.on(triggers, self.render, inputs=controls, outputs=outputs,
                  show_progress="minimal", show_progress_on=[img0], trigger_mode="always_last",
                  concurrency_limit=1, concurrency_id="jax", api_name="render")
            demo.load(self.render, inputs=controls, outputs=outputs, concurrency_id="jax",
                      api_visibility="private")
            compare.change(lambda c: gr.Image(visible=c is not None and int(c) >= 0),
                           inputs=compare, outputs=img1, queue=False,
                           api_visibility="private")
            rnd.click(lambda: int(np.random.default_rng().integers(0, 2**31 - 1)),
                      outputs=seed, queue=False, api_visibility="private")
            reset.click(lambda: [0.0] * len(sliders), outputs=sliders, queue=False,
                        api_visibility="private")
            export.click(self.export, inputs=[name] + controls, outputs=[exported, files],
                         concurrency_limit=1, concurrency_id="jax", api_name="export")
        return demo


def launch(demo, port: int | None, export_dir: str, block: bool = True):
    """Serves the page on 127.0.0.1:port (None: the first free port from 7860); no share link.
    -> (app, local url, None); with block=False it returns while the server runs."""
    app, url, share = demo.launch(
        server_name="127.0.0.1", server_port=port, share=False, inbrowser=False,
        prevent_thread_lock=not block, quiet=True, show_error=True, ssr_mode=False,
        pwa=False, mcp_server=False, enable_monitoring=False,
        allowed_paths=[os.path.abspath(export_dir)], footer_links=["api", "settings"],
        theme=_theme(), css=CSS)
    return app, url, share
