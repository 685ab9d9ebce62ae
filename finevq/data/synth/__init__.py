"""FineVD-Synth: synthetic distorted videos with known fine-grained labels in the FineVD format.
`generate` writes a folder; `write_preview` draws a contact sheet of every distortion subtype."""

from finevq.data.synth.content import SceneOptions
from finevq.data.synth.preview import write_preview
from finevq.data.synth.writer import SynthConfig, generate

__all__ = ["SceneOptions", "SynthConfig", "generate", "write_preview"]
