"""FineVQ demo and Hugging Face Space: upload a video, rate its quality dimensions, see its distortions
and quality over time, then chat about it. Layout and wiring only; the handlers are finevq.demo.

    python app.py [--model DIR_OR_HUB_ID] [--port 7860]     # FINEVQ_MODEL also selects the model
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402  (after the analytics default above)

from finevq.demo import (  # noqa: E402
    DISTORTION_COLUMNS,
    LEVEL_COLORS,
    RATING_COLUMNS,
    SUGGESTED_QUESTIONS,
    DemoHandlers,
    DemoSettings,
    load_examples,
    user_message,
)
from finevq.errors import FineVQError  # noqa: E402
from finevq.taxonomy import DIMENSIONS  # noqa: E402

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
HEADER = """# FineVQ · fine-grained video quality
Rate a user-generated video on six quality dimensions (color, noise, artifact, blur, temporal, overall)
with a score and a level, find its distortions, and ask the model about them."""
CSS = """
.gradio-container {max-width: 1280px !important; margin: auto;}
#summary h3 {margin-top: 0;}
"""
THEME = gr.themes.Soft(primary_hue="indigo", secondary_hue="slate")
_START_SUMMARY = "### Upload a video or pick an example, choose dimensions, then press **Assess**."
_EMPTY_CHAT_HINT = "Assess a video, then ask about its quality. Answers stream as the model writes them."


def _shown(error: FineVQError, video: str | None) -> gr.Error:
    return gr.Error(user_message(error, video), title="FineVQ cannot do that", print_exception=False)


def create_app(settings: DemoSettings, model=None) -> gr.Blocks:
    """The demo's page over `model` (loaded from settings.model when None)."""
    if model is None:
        from finevq.inference import FineVQ

        model = FineVQ.from_pretrained(settings.model)
    handlers = DemoHandlers(model, settings)
    low, high = model.score_range
    examples = load_examples(EXAMPLES_DIR)

    def assess(video, dimensions, diagnose, progress=gr.Progress()):
        """Rate a video on the chosen dimensions (and with diagnose, find its distortions): summary,
        ratings table, score chart, distortions table, quality over time, and the assessment as JSON."""
        try:
            view = handlers.assess(video, dimensions, diagnose, progress=progress)
        except FineVQError as error:
            raise _shown(error, video) from None
        chart = gr.BarPlot(value=view.chart, y_lim=view.axis)
        timeline = gr.LinePlot(value=view.timeline, y_lim=view.axis, visible=view.timeline is not None)
        return view.summary, view.ratings, chart, view.distortions, timeline, view.shown_record, view.record

    def chat(video, question, history, record):
        """Answer a question about the video, streamed; history is the chat so far (messages)."""
        try:
            for shown in handlers.chat(video, question, history, record):
                yield shown, ""
        except FineVQError as error:
            raise _shown(error, video) from None

    def video_changed(video):
        """A new video: forget the old results and conversation; a preview when the browser needs one."""
        preview = None
        try:
            preview = handlers.preview(video)
        except FineVQError as error:
            gr.Warning(user_message(error, video))
        return (gr.Video(value=preview, visible=preview is not None), [], None, _START_SUMMARY, None, None,
                None, gr.LinePlot(value=None, visible=False), None)

    with gr.Blocks(title="FineVQ: fine-grained video quality") as demo:
        gr.Markdown(HEADER)
        record = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                video = gr.Video(label="Video (its original file is what gets scored)", sources=["upload"], height=300)
                preview = gr.Video(label="Browser preview (transcoded; scoring uses the original)", visible=False,
                                   interactive=False, height=240, elem_id="preview")
                dimensions = gr.CheckboxGroup(
                    [(d.capitalize(), d) for d in DIMENSIONS], value=list(DIMENSIONS), label="Dimensions to rate",
                    show_select_all=True, elem_id="dimensions",
                )
                diagnose = gr.Checkbox(value=True, label="Diagnose distortions (type and subtype)")
                assess_button = gr.Button("Assess", variant="primary", elem_id="assess")
                if examples:
                    gr.Examples([[path] for path, _ in examples], inputs=[video], example_labels=[t for _, t in examples],
                                label="Example clips (synthetic, each with other distortions)")
                with gr.Accordion("Model", open=True):
                    gr.Markdown(handlers.model_card())
            with gr.Column(scale=3):
                summary = gr.Markdown(_START_SUMMARY, elem_id="summary")
                ratings = gr.Dataframe(headers=RATING_COLUMNS, label="Ratings", interactive=False, elem_id="ratings")
                chart = gr.BarPlot(x="Dimension", y="Score", color="Level", color_map=LEVEL_COLORS, y_lim=[low, high],
                                   sort=[d.capitalize() for d in DIMENSIONS], label="Scores by dimension")
                distortions = gr.Dataframe(headers=DISTORTION_COLUMNS, label="Distortions", interactive=False,
                                           elem_id="distortions")
                timeline = gr.LinePlot(x="Time (s)", y="Score", color="Dimension", y_lim=[low, high], visible=False,
                                       label="Quality over time")
                with gr.Accordion("Result as JSON", open=False):
                    raw = gr.JSON(label="Assessment")
        gr.Markdown("## Ask about the video")
        chatbot = gr.Chatbot(label="FineVQ chat", height=320, placeholder=_EMPTY_CHAT_HINT, elem_id="chatbot",
                             feedback_options=None, buttons=["copy", "copy_all"])
        with gr.Row():
            question = gr.Textbox(placeholder="e.g. Is there any noise in this video?", show_label=False, scale=6,
                                  elem_id="question")
            send = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="send")
            stop = gr.Button("Stop", variant="stop", scale=1, min_width=80)
            clear = gr.Button("Clear", scale=1, min_width=80)
        gr.Examples([[q] for q in SUGGESTED_QUESTIONS], inputs=[question], label="Suggested questions")

        results = [summary, ratings, chart, distortions, timeline, raw, record]
        assess_button.click(assess, [video, dimensions, diagnose], results, api_name="assess")
        chat_inputs, chat_outputs = [video, question, chatbot, record], [chatbot, question]
        sent = send.click(chat, chat_inputs, chat_outputs, api_name="chat")
        submitted = question.submit(chat, chat_inputs, chat_outputs, api_visibility="private")
        stop.click(None, cancels=[sent, submitted])
        clear.click(lambda: ([], ""), None, [chatbot, question], api_visibility="private")
        video.change(video_changed, video, [preview, chatbot, record, summary, ratings, chart, distortions, timeline, raw],
                     api_visibility="private")
    return demo


def launch(demo: gr.Blocks, settings: DemoSettings, **launch_options):
    """Queue and serve the demo with its limits, theme and footer; returns `Blocks.launch`'s result."""
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    options = {"footer_links": ["api", "gradio"], **launch_options}
    return demo.launch(max_file_size=int(settings.max_file_mb * 2**20), theme=THEME, css=CSS, **options)


def parse_settings(argv: list[str] | None = None) -> tuple[DemoSettings, argparse.Namespace]:
    defaults = DemoSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("FINEVQ_MODEL") or None,
                        help="checkpoint folder or hub id (default: $FINEVQ_MODEL, else the shipped finevq-tiny)")
    parser.add_argument("--max-file-mb", type=float, default=defaults.max_file_mb, help="largest upload, MB")
    parser.add_argument("--max-seconds", type=float, default=defaults.max_seconds, help="longest video, seconds")
    parser.add_argument("--timeline-after", type=float, default=defaults.timeline_after,
                        help="videos longer than this many seconds also get quality over time")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, help="requests served at once")
    parser.add_argument("--queue-size", type=int, default=defaults.queue_size, help="requests waiting at most")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = parser.parse_args(argv)
    settings = DemoSettings(
        model=args.model, max_file_mb=args.max_file_mb, max_seconds=args.max_seconds,
        timeline_after=args.timeline_after, concurrency=args.concurrency, queue_size=args.queue_size,
    )
    return settings, args


def main(argv: list[str] | None = None) -> None:
    try:
        settings, args = parse_settings(argv)
        demo = create_app(settings)
    except FineVQError as error:
        sys.exit(f"app.py: error: {error}")
    launch(demo, settings, server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()
