"""Seed the research areas subscribers can follow.

The ranking reads each topic's name and description as a query, so the descriptions use the
words papers of the area actually use (their methods, tasks, datasets), not marketing prose.
"""

from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

TOPICS = [
    (
        "diffusion-models",
        "Diffusion models",
        "Denoising diffusion probabilistic models and score-based generative models that learn "
        "to reverse a noising process. Papers study samplers, noise schedules and time steps, "
        "latent diffusion, classifier-free guidance, distillation into one-step or few-step "
        "generators, and text-to-image generation and image editing with Stable Diffusion.",
    ),
    (
        "large-language-models",
        "Large language models",
        "Pretraining, instruction tuning and evaluation of large language models (LLMs) built "
        "on decoder-only transformers. Papers cover scaling laws, tokenization, long context, "
        "in-context learning, parameter-efficient fine-tuning such as LoRA, and what language "
        "models learn from their pretraining corpus.",
    ),
    (
        "llm-reasoning-agents",
        "LLM reasoning & agents",
        "Reasoning with large language models: chain-of-thought prompting, test-time compute "
        "and inference scaling, self-consistency, verifiers and reward models for math and "
        "code. LLM agents that plan, call tools, browse the web and act over many steps.",
    ),
    (
        "computer-vision",
        "Computer vision",
        "Image recognition and understanding: image classification, object detection, semantic "
        "and instance segmentation, depth estimation, and visual representations learned by "
        "convolutional networks and vision transformers (ViT) on ImageNet and COCO.",
    ),
    (
        "3d-vision",
        "3D vision & rendering",
        "Reconstructing and rendering 3D scenes and objects: neural radiance fields (NeRF), "
        "3D Gaussian splatting, neural fields and implicit representations, meshes and point "
        "clouds, multi-view stereo, monocular depth and pose estimation, and text-to-3D "
        "generation.",
    ),
    (
        "video-generation",
        "Video generation",
        "Generating and editing videos from text, images or earlier frames with video "
        "diffusion models and autoregressive transformers. Papers address temporal "
        "consistency, motion, long video generation, frame interpolation and video "
        "tokenizers.",
    ),
    (
        "speech-audio",
        "Speech & audio",
        "Automatic speech recognition (ASR), text-to-speech synthesis (TTS), speaker and voice "
        "modelling, audio generation and music generation, and audio language models trained "
        "on waveforms, spectrograms or neural audio codec tokens.",
    ),
    (
        "reinforcement-learning",
        "Reinforcement learning",
        "Agents that learn a policy from reward by interacting with an environment modelled as "
        "a Markov decision process (MDP). Papers cover policy gradients, Q-learning and value "
        "functions, offline and model-based reinforcement learning, exploration, bandits, and "
        "reinforcement learning from human feedback (RLHF).",
    ),
    (
        "robotics-embodied-ai",
        "Robotics & embodied AI",
        "Robot learning and embodied agents: manipulation and grasping, locomotion, navigation, "
        "vision-language-action models, imitation learning from demonstrations, sim-to-real "
        "transfer, and autonomous driving with motion forecasting and planning.",
    ),
    (
        "graph-neural-networks",
        "Graph neural networks",
        "Learning on graphs with graph neural networks (GNNs) and message passing: node "
        "classification, link prediction and graph classification, graph transformers, "
        "heterophily and over-smoothing, knowledge graphs, hypergraphs, molecules, and node "
        "and graph embeddings.",
    ),
    (
        "efficient-inference",
        "Efficient inference & quantization",
        "Making neural networks smaller and faster: quantization to low precision (INT8, "
        "4-bit, binary networks), pruning and sparsity, knowledge distillation, low-rank "
        "compression, efficient attention, KV cache and mixture-of-experts inference, and "
        "on-device deployment on mobile and microcontroller hardware.",
    ),
    (
        "multimodal-models",
        "Multimodal models",
        "Models that connect vision and language: vision-language models (VLMs), multimodal "
        "large language models, CLIP-style contrastive image-text pretraining, visual "
        "question answering, image captioning and visual instruction tuning.",
    ),
    (
        "retrieval-rag",
        "Retrieval & RAG",
        "Information retrieval and retrieval-augmented generation (RAG): dense retrieval with "
        "embedding models, multi-vector retrieval, rerankers and cross-encoders, approximate "
        "nearest neighbor search, and ranking documents, passages or images for a query.",
    ),
    (
        "ai-safety-alignment",
        "AI safety & alignment",
        "Aligning models with human intent and keeping them safe: preference optimization, "
        "red teaming, jailbreaks, adversarial attacks and robustness, interpretability and "
        "explanations, uncertainty and calibration, hallucination, privacy and fairness.",
    ),
    (
        "optimization-training",
        "Optimization & training",
        "How neural networks are trained: optimizers such as SGD and Adam, learning rate "
        "schedules, initialization and normalization, backpropagation and its alternatives, "
        "loss landscapes, generalization theory, neural tangent kernel and infinite-width "
        "limits, and distributed training at scale.",
    ),
    (
        "self-supervised-learning",
        "Self-supervised & representation learning",
        "Learning representations without labels: contrastive learning, masked image and "
        "masked language modeling, joint-embedding methods, pretraining then transfer to "
        "downstream tasks, metric learning and embeddings, disentanglement and clustering.",
    ),
    (
        "medical-scientific-ml",
        "Medical & scientific ML",
        "Machine learning for medicine and science: medical image segmentation (MRI, CT), "
        "brain and fMRI data, clinical prediction, protein and molecule modelling, and "
        "neural operators and physics-informed networks that solve PDEs for simulation.",
    ),
    (
        "code-generation",
        "Code generation",
        "Language models that write and understand programs: code generation from natural "
        "language, program synthesis, code completion and repair, benchmarks such as "
        "HumanEval, and code LLMs trained on programming languages.",
    ),
    (
        "time-series",
        "Time series",
        "Forecasting and modelling sequential measurements: time series forecasting, anomaly "
        "detection, state space models for long sequences, temporal point processes, and "
        "spatio-temporal data from sensors, traffic and weather.",
    ),
    (
        "datasets-benchmarks",
        "Datasets & benchmarks",
        "New datasets, benchmarks and evaluation protocols: how they were collected and "
        "annotated, leaderboards and baselines, data quality and contamination, and what "
        "current models still fail at.",
    ),
]


def add_topics(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Topic = apps.get_model("papers", "Topic")
    for slug, name, description in TOPICS:
        Topic.objects.update_or_create(
            slug=slug, defaults={"name": name, "description": description}
        )


def remove_topics(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Topic = apps.get_model("papers", "Topic")
    Topic.objects.filter(slug__in=[slug for slug, _, _ in TOPICS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("papers", "0002_topic"),
    ]

    operations = [
        migrations.RunPython(add_topics, remove_topics),
    ]
