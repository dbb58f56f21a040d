"""Pretrained weights in and out: all-MiniLM-L6-v2 on our Encoder, safetensors, and GPT-2 names.

    safetensors_io  read/write the safetensors format with json + numpy only
    wordpiece       BERT's WordPiece tokenizer from a vocab.txt
    bert            a Hugging Face BERT checkpoint's config and names onto our Encoder (and back)
    pooling         mean pooling and L2 normalisation, forward and backward
    minilm          load_minilm(): the installed all-MiniLM-L6-v2 as a SentenceEncoder
    finetune        a toy fine-tuning task: gradients flow through the loaded model
    serialization   save_model/load_model for every model family; GPT <-> GPT-2 state dicts
See docs/pretrained.md.
"""
from .bert import build_encoder_from_bert, encoder_config_from_bert, export_bert_state_dict, load_bert_weights
from .finetune import EmbeddingClassifier, finetune_classifier
from .minilm import INSTALL_COMMAND, SentenceEncoder, find_minilm_dir, load_minilm, minilm_available
from .safetensors_io import read_safetensors, write_safetensors
from .serialization import (export_gpt2_state_dict, gpt2_config_dict, import_gpt2_state_dict, load_model,
                            save_model)
from .wordpiece import BatchEncoding, WordPieceTokenizer

__all__ = ["BatchEncoding", "EmbeddingClassifier", "INSTALL_COMMAND", "SentenceEncoder", "WordPieceTokenizer",
           "build_encoder_from_bert", "encoder_config_from_bert", "export_bert_state_dict", "export_gpt2_state_dict",
           "find_minilm_dir", "finetune_classifier", "gpt2_config_dict", "import_gpt2_state_dict", "load_bert_weights",
           "load_minilm", "load_model", "minilm_available", "read_safetensors", "save_model", "write_safetensors"]
