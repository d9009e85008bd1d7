"""Model name -> the LightningModule that trains it: a language model or a translation task."""
from models.names import parse_model_name
from pipeline.training.language_model_task import LanguageModelTask
from pipeline.training.sequence_task import SequenceTask
from pipeline.training.translation_task import TranslationTask


def task_class(name: str) -> type[SequenceTask]:
    family, _ = parse_model_name(name)
    return LanguageModelTask if family == "lm" else TranslationTask
