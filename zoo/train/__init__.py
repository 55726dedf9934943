"""The zoo training kit (install with the `[train]` extra). Nothing else in `zoo` imports it.

Plain PyTorch pieces that the short programs under `training/` put together:

    distributed   torchrun environment -> process group (gloo on CPU, nccl on GPU), DDP / FSDP2
                  wrapping, rank-aware logging, mixed precision
    checkpoint    atomic checkpoints (model, optimisers, schedulers, EMA, scaler, every rank's RNG,
                  step, data position) and `resume: auto`
    ema           exponential moving average of weights
    losses        L1/L2, multi-resolution STFT, mel, perceptual (LPIPS-style), adversarial,
                  feature matching, KL, rectified-flow velocity loss
    discriminators PatchGAN (images), multi-period and multi-resolution (audio)
    semantic_lm   ASR alignment through a frozen, pluggable language model (XY-Tokenizer stage 1)
    data          image folders, audio folders, webdataset-style tar shards; resumable sampling
    monitor       JSONL + TensorBoard metrics, tqdm progress on rank 0
    recipe        strict YAML recipes -> dataclasses; building / loading / freezing the model
    families      training passes beyond the contract, per family name (continuous stage, proxy codes, REPA)
    one_d_piece, vat, flextok
                  those passes, made of each model's parts (stage-1 proxy codes, the VAE stage, the REPA encoder)
    proxy         proxy-code teachers for One-D-Piece's stage 1 (MaskGIT-VQGAN, patch k-means)

Import the submodules directly (`from zoo.train import losses`); this file imports nothing heavy.
"""
