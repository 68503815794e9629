"""Stochastic GAN restorer with a conditional critic (Lattner & Nistal 2021), Lightning 2 manual optimization.

The generator sees the degraded STFT features (``representation``) and a noise tensor ``z`` and predicts a
residual on those features; the critic scores (degraded, candidate) feature pairs. Each training step
runs ``critic_steps`` critic updates, then one generator update. Different ``z`` give different plausible
restorations; inference draws ``num_samples`` of them per track from a seeded generator.

A reconstruction loss alone pulls every sample to the conditional mean, so the generator learns to ignore
``z``. Two options counter it: ``reconstruction_max_freq`` keeps the regression to the band the codec kept
(the band above is left to the adversarial and feature-matching terms), and ``diversity_weight`` adds a
diversity-sensitive term (mode seeking, Mao et al. 2019; clamped as in DSGAN, Yang et al. 2019) that
rewards two noise draws for giving different high bands.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable

import torch
from torch import nn

from musicbench.audio.stft import Stft
from musicbench.evaluation.systems import MEAN, sample_name
from musicbench.models.base import OptimizerFactory, SchedulerFactory, build_optimizer, track_seed
from musicbench.models.losses import WassersteinLoss, gradient_penalty
from musicbench.models.restoration import RestorationModule, input_band_bins

log = logging.getLogger(__name__)


class AdversarialRestorer(RestorationModule):
    """A generator/critic pair trained adversarially, with optional reconstruction and feature matching.

    Args:
        generator: factory (``_partial_``) called as ``generator(in_channels=K, out_channels=K)`` with
            ``K`` the representation's channels; a module with the interface of
            :class:`~musicbench.nets.gan.SpectralGenerator` (``forward(x, z, generator)``, ``z_dim``,
            ``draw_noise``).
        critic: factory called as ``critic(in_channels=K)`` (e.g. :class:`~musicbench.nets.gan.SpectralCritic`).
        representation: STFT features (``musicbench.audio.representations``), e.g. compressed complex.
        adversarial: loss object with ``critic(real, fake)`` and ``generator(fake)`` (WGAN, hinge, LS;
            :mod:`musicbench.models.losses`).
        gradient_penalty_weight: weight of the WGAN-GP penalty (0 disables it).
        reconstruction: optional waveform loss ``loss(estimate, clean)`` for the generator (e.g. the
            multi-resolution STFT loss); ``reconstruction_weight`` scales it.
        feature_matching_weight: weight of the L1 distance of critic activations on fake vs real.
        critic_steps: critic updates per generator update (on the same batch).
        optimizer, critic_optimizer: partial optimizers of the generator and the critic.
        scheduler, critic_scheduler: optional partial LR schedulers, stepped once per epoch.
        ema_decay: keep an exponential moving average of the generator weights (used for inference);
            ``None`` to disable.
        gradient_clip: max gradient norm of both networks (``None``: no clipping).
        num_samples: restorations drawn per track at evaluation (``K``).
        seed: base of the per-track noise seeds at inference.
        audio_channels, n_fft, hop_length: the STFT of the features.
        input_rate: rate (Hz) whose band the input carries (hi-res restoration: the MP3's 44.1 kHz, below
            ``sample_rate``); the generator and the critic's condition see only the STFT bins below
            ``input_rate / 2`` (the rest set to zero, not the resampler's residue) and the generator's
            residual covers every bin of ``sample_rate``. ``None``: the full band.
        diversity_weight: weight of the diversity term (0 disables it; a no-op, with a log line, for a
            generator without noise). Each generator step then draws two noises ``z1, z2`` per item and
            adds ``-diversity_weight * mean(min(d(G(c, z1), G(c, z2)) / mean|z1 - z2|, diversity_tau))``,
            ``d`` the mean absolute difference of the compressed magnitudes ``|X|^0.5`` of the two
            restorations above ``diversity_min_freq``; the other generator terms are averaged over both.
        diversity_tau: clamp of the ratio (DSGAN's tau): past it, diversity earns nothing more, so it cannot
            outweigh plausibility; ``None``: no clamp.
        diversity_min_freq: Hz; the band the diversity term measures starts here (``None``: the whole band).
        reconstruction_max_freq: Hz; the reconstruction loss sees the restoration below this frequency only
            (above it, the restoration's STFT bins are replaced by the clean ones, so they get no gradient
            from it), e.g. the codec's low-pass. ``None``: the whole band.
        **kwargs: :class:`RestorationModule` arguments (sample rate, inference chunking). Its ``loss`` is
            the reconstruction loss used for ``val/loss``.

    Logs ``train/g_loss``, ``train/d_loss``, ``train/gp``, ``train/critic_real``, ``train/critic_fake``,
    ``train/reconstruction``, ``train/diversity`` (the unclamped ratio, when the term is on) and the validation
    metrics of :class:`RestorationModule`.
    """

    def __init__(
        self,
        generator: Callable[..., nn.Module],
        critic: Callable[..., nn.Module],
        representation,
        adversarial=None,
        gradient_penalty_weight: float = 10.0,
        reconstruction: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        reconstruction_weight: float = 1.0,
        feature_matching_weight: float = 0.0,
        critic_steps: int = 1,
        optimizer: OptimizerFactory | None = None,
        critic_optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
        critic_scheduler: SchedulerFactory | None = None,
        ema_decay: float | None = 0.999,
        gradient_clip: float | None = None,
        num_samples: int = 4,
        seed: int = 0,
        audio_channels: int = 2,
        n_fft: int = 1024,
        hop_length: int = 256,
        input_rate: int | None = None,
        diversity_weight: float = 0.0,
        diversity_tau: float | None = None,
        diversity_min_freq: float | None = None,
        reconstruction_max_freq: float | None = None,
        **kwargs,
    ) -> None:
        rec = reconstruction if reconstruction is not None else nn.L1Loss()
        super().__init__(loss=rec, optimizer=optimizer, scheduler=scheduler, **kwargs)
        if critic_steps < 1 or num_samples < 1:
            raise ValueError(f"critic_steps and num_samples must be >= 1, got {critic_steps}, {num_samples}")
        self.automatic_optimization = False
        self.representation = representation
        k = representation.channels_per_audio_channel * int(audio_channels)
        self.generator = generator(in_channels=k, out_channels=k)
        self.critic = critic(in_channels=k)
        self.stft = Stft(n_fft, hop_length)
        self.input_bins = input_band_bins(n_fft, self.sample_rate, input_rate)
        self.adversarial = adversarial if adversarial is not None else WassersteinLoss()
        self.gp_weight, self.rec_weight = float(gradient_penalty_weight), float(reconstruction_weight)
        self.use_reconstruction = reconstruction is not None and self.rec_weight > 0
        self.fm_weight, self.critic_steps = float(feature_matching_weight), int(critic_steps)
        self.critic_optimizer_factory, self.critic_scheduler_factory = critic_optimizer, critic_scheduler
        self.gradient_clip, self.num_samples, self.seed = gradient_clip, int(num_samples), int(seed)
        self.ema = None
        if ema_decay is not None:
            self.ema = torch.optim.swa_utils.AveragedModel(
                copy.deepcopy(self.generator),
                multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(float(ema_decay)),
            )
            self.ema.requires_grad_(False)
        if diversity_weight < 0 or (diversity_tau is not None and diversity_tau <= 0):
            raise ValueError(
                f"diversity_weight must be >= 0 and diversity_tau > 0, got {diversity_weight}, {diversity_tau}"
            )
        has_noise = self.generator.z_dim > 0
        self.div_weight = float(diversity_weight) if has_noise else 0.0
        if diversity_weight > 0 and not has_noise:
            log.info(
                "diversity_weight=%s has no effect: the generator draws no noise (z_dim=0)", diversity_weight
            )
        self.div_tau = None if diversity_tau is None else float(diversity_tau)
        self.div_min_bin = self._bin(diversity_min_freq, n_fft)
        self.rec_max_bin = self._bin(reconstruction_max_freq, n_fft)

    def _bin(self, freq: float | None, n_fft: int) -> int:
        """First STFT bin at or above ``freq`` Hz (0 for ``None``)."""
        if freq is None:
            return 0
        if not 0 < freq < self.sample_rate / 2:
            raise ValueError(f"a band edge must lie in (0, {self.sample_rate / 2}) Hz, got {freq}")
        return math.ceil(freq * n_fft / self.sample_rate)

    # --- generation ------------------------------------------------------------------------------------
    @property
    def align(self) -> int:
        return self.stft.hop_length

    def _features(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spec = self.stft(audio)
        return self.representation.encode(spec), spec

    def _condition(self, degraded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator's input features (the input's band only) and the degraded STFT."""
        cond, spec = self._features(degraded)
        if self.input_bins < cond.shape[-2]:
            cond = torch.cat(
                (cond[..., : self.input_bins, :], cond.new_zeros(cond[..., self.input_bins :, :].shape)), -2
            )
        return cond, spec

    def _generate(self, condition: torch.Tensor, net: nn.Module, generator=None, z=None) -> torch.Tensor:
        return condition + net(condition, z=z, generator=generator)

    def _diversity(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        za: list[torch.Tensor],
        zb: list[torch.Tensor],
        spec: torch.Tensor,
    ) -> torch.Tensor:
        """Mode-seeking ratio per item ``(B,)``: the mean absolute difference of the compressed magnitudes
        ``|X|^0.5`` of restorations ``a, b`` (features ``(B, K, F, N)``) above the diversity band edge, over
        the mean absolute difference of their noises (lists of ``(B, ...)``)."""
        band = slice(self.div_min_bin, None)
        mag_a = self.representation.decode(a, spec)[..., band, :].abs().clamp_min(1e-8).sqrt()
        mag_b = self.representation.decode(b, spec)[..., band, :].abs().clamp_min(1e-8).sqrt()
        dx = (mag_a - mag_b).abs().flatten(1).mean(1)
        dz = torch.cat([(x - y).abs().flatten(1) for x, y in zip(za, zb, strict=True)], dim=1).mean(1)
        return dx / dz.clamp_min(1e-8)

    def _reconstruction(self, fake: torch.Tensor, spec: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        """The reconstruction loss of restored features ``(B, K, F, N)`` (``spec``: the degraded STFT) against
        clean audio ``(B, C, T)``, below ``reconstruction_max_freq``: above it the restoration's bins are
        replaced by the clean ones, so that band gets no gradient and adds (almost) nothing to the loss."""
        est = self.representation.decode(fake, spec)
        if self.rec_max_bin:
            low = torch.arange(est.shape[-2], device=est.device)[:, None] < self.rec_max_bin
            est = torch.where(low, est, self.stft(clean))
        return self.loss(self.stft.inverse(est, clean.shape[-1]), clean)

    def restore(
        self, degraded: torch.Tensor, generator: torch.Generator | None = None, use_ema: bool | None = None
    ) -> torch.Tensor:
        """Degraded ``(B, C, T)`` -> one restoration ``(B, C, T)`` with ``z`` drawn from ``generator``
        (the EMA generator outside training, unless ``use_ema=False``)."""
        use_ema = (not self.training) if use_ema is None else use_ema
        net = self.ema.module if (use_ema and self.ema is not None) else self.generator
        cond, spec = self._condition(degraded)
        est = self.representation.decode(self._generate(cond, net, generator), spec)
        return self.stft.inverse(est, degraded.shape[-1])

    @torch.no_grad()
    def sample(self, degraded: torch.Tensor, num_samples: int | None = None, seed: int = 0) -> torch.Tensor:
        """``K`` full-track restorations ``(K, B, C, T)`` of degraded ``(B, C, T)``, by overlap-add of chunks.

        Sample ``k`` draws its noise from a generator seeded with ``seed + k`` (chunks in order), so the
        same seed gives the same restorations.
        """
        out = []
        for k in range(num_samples or self.num_samples):
            gen = torch.Generator(device=degraded.device).manual_seed(int(seed) + k)
            out.append(self.chunked(lambda x, g=gen: self.restore(x, generator=g), degraded))
        return torch.stack(out)

    @torch.no_grad()
    def separate(self, degraded: torch.Tensor) -> torch.Tensor:
        """The first of the seeded samples as ``(B, 1, C, T)`` (the single-estimate interface)."""
        return self.sample(degraded, num_samples=1, seed=self.seed)[0].unsqueeze(1)

    @torch.no_grad()
    def estimate_systems(self, degraded: torch.Tensor, name: str) -> dict[str, torch.Tensor]:
        """The evaluation systems of one track: ``sample_k`` for each of the ``K`` restorations and ``mean``
        (their average waveform), each ``(1, C, T)`` for the single source ``clean``; seeded by the name."""
        samples = self.sample(degraded.unsqueeze(0), seed=track_seed(name, self.seed))[:, 0]  # (K, C, T)
        systems = {sample_name(k): s.unsqueeze(0) for k, s in enumerate(samples)}
        systems[MEAN] = samples.mean(0).unsqueeze(0)
        return systems

    # --- training --------------------------------------------------------------------------------------
    def _clip(self, params) -> None:
        if self.gradient_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, self.gradient_clip)

    def training_step(self, batch, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        degraded, clean = batch
        clean, bs = clean[:, 0], degraded.shape[0]
        cond, spec = self._condition(degraded)
        real, _ = self._features(clean)

        for _ in range(self.critic_steps):
            with torch.no_grad():
                fake = self._generate(cond, self.generator)
            real_scores, _ = self.critic(cond, real)
            fake_scores, _ = self.critic(cond, fake)
            d_loss = self.adversarial.critic(real_scores, fake_scores)
            gp = (
                gradient_penalty(self.critic, cond, real, fake)
                if self.gp_weight > 0
                else d_loss.new_zeros(())
            )
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss + self.gp_weight * gp)
            self._clip(self.critic.parameters())
            opt_d.step()

        if self.div_weight > 0:
            # two noises per item, as one batch of 2B: every generator term sees both restorations
            z, z2 = (
                self.generator.draw_noise(cond.shape, device=cond.device, dtype=cond.dtype) for _ in range(2)
            )
            cond, real, spec = (torch.cat((t, t)) for t in (cond, real, spec))
            clean = torch.cat((clean, clean))
            fake = self._generate(cond, self.generator, z=[torch.cat(p) for p in zip(z, z2, strict=True)])
        else:
            fake = self._generate(cond, self.generator)
        fake_scores, fake_feats = self.critic(cond, fake)
        g_loss = self.adversarial.generator(fake_scores)
        total = g_loss
        if self.div_weight > 0:
            ratio = self._diversity(fake[:bs], fake[bs:], z, z2, spec[:bs])
            clamped = ratio if self.div_tau is None else ratio.clamp_max(self.div_tau)
            total = total - self.div_weight * clamped.mean()
            self.log("train/diversity", ratio.mean().detach(), batch_size=bs)
        if self.fm_weight > 0:
            with torch.no_grad():
                _, real_feats = self.critic(cond, real)
            fm = sum((f - r).abs().mean() for f, r in zip(fake_feats, real_feats, strict=True)) / len(
                fake_feats
            )
            total = total + self.fm_weight * fm
            self.log("train/feature_matching", fm, batch_size=bs)
        if self.use_reconstruction:
            rec = self._reconstruction(fake, spec, clean)
            total = total + self.rec_weight * rec
            self.log("train/reconstruction", rec, batch_size=bs)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(total)
        self._clip(self.generator.parameters())
        opt_g.step()
        if self.ema is not None:
            self.ema.update_parameters(self.generator)

        self.log_dict(
            {
                "train/g_loss": total.detach(),
                "train/d_loss": d_loss.detach(),
                "train/gp": gp.detach(),
                "train/critic_real": real_scores.mean().detach(),
                "train/critic_fake": fake_scores.mean().detach(),
            },
            prog_bar=True,
            batch_size=bs,
        )

    def forward(self, degraded: torch.Tensor) -> torch.Tensor:
        """One restoration per item ``(B, C, T)``, each with the fixed noise of ``seed`` drawn for that item
        alone: validation metrics neither jitter with z nor depend on which items share a batch (one
        process and several batch the validation items differently)."""
        return torch.cat(
            [
                self.restore(
                    x.unsqueeze(0), generator=torch.Generator(device=x.device).manual_seed(self.seed)
                )
                for x in degraded
            ]
        )

    def on_train_epoch_end(self) -> None:
        scheds = self.lr_schedulers()
        for sched in scheds if isinstance(scheds, list) else [scheds] if scheds is not None else []:
            sched.step()

    def configure_optimizers(self):
        if self.optimizer_factory is None or self.critic_optimizer_factory is None:
            raise ValueError("AdversarialRestorer needs model.optimizer and model.critic_optimizer")
        opt_g, sched_g = build_optimizer(
            self.optimizer_factory, self.scheduler_factory, self.generator.parameters()
        )
        opt_d, sched_d = build_optimizer(
            self.critic_optimizer_factory, self.critic_scheduler_factory, self.critic.parameters()
        )
        return [opt_g, opt_d], [s for s in (sched_g, sched_d) if s is not None]
