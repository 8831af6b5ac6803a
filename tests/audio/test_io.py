"""Loading (wav/flac/ogg/mp3, downmix, resample), AudioLDM's normalisation, and atomic saving."""

from __future__ import annotations

import os

import librosa
import numpy as np
import pytest
import soundfile as sf

from tests.reference import audio_tools
from tta.audio import io as audio_io
from tta.audio import load_audio, normalize_waveform, resample, save_audio
from tta.errors import InputError


def _tone(freq: float, sr: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_freq(wav: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return float(np.fft.rfftfreq(len(wav), 1 / sr)[spectrum.argmax()])


@pytest.mark.parametrize(
    ("ext", "fmt", "subtype", "atol"),
    [
        ("wav", "WAV", "FLOAT", 1e-7),
        ("wav", "WAV", "PCM_16", 1 / 32768),
        ("flac", "FLAC", "PCM_16", 1 / 32768),
        ("ogg", "OGG", "VORBIS", None),
        ("mp3", "MP3", "MPEG_LAYER_III", None),
    ],
)
def test_load_formats_at_16k(tmp_path, ext, fmt, subtype, atol):
    wav = _tone(440.0, 16000)
    path = tmp_path / f"tone.{ext}"
    sf.write(path, wav, 16000, format=fmt, subtype=subtype)
    loaded = load_audio(path)
    assert loaded.dtype == np.float32 and loaded.ndim == 1
    if atol is not None:  # lossless: sample-exact
        np.testing.assert_allclose(loaded, wav, atol=atol)
    else:  # lossy codecs add a delay and change samples: the tone and its level must survive
        assert abs(len(loaded) - len(wav)) <= 2048
        assert abs(_peak_freq(loaded, 16000) - 440.0) < 5.0
        assert 0.4 < np.abs(loaded).max() < 0.6


def test_downmix_and_resample(tmp_path):
    left, right = _tone(440.0, 44100), _tone(1000.0, 44100, amp=0.25)
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([left, right], axis=1), 44100, subtype="PCM_24")
    loaded = load_audio(path)
    expected = librosa.resample((left + right) / 2, orig_sr=44100, target_sr=16000, res_type="soxr_hq")
    assert loaded.shape == (16000,)
    np.testing.assert_allclose(loaded, expected, atol=1e-5)


def test_resample_is_noop_at_same_rate_and_keeps_pitch():
    wav = _tone(440.0, 22050)
    assert resample(wav, 16000, 16000) is wav
    out = resample(wav, 22050, 16000)
    assert out.dtype == np.float32 and len(out) == 16000
    assert abs(_peak_freq(out, 16000) - 440.0) < 2.0


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(InputError):
        load_audio(junk)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(InputError, match="no samples"):
        load_audio(empty)


def test_normalize_matches_original():
    tools = audio_tools()
    rng = np.random.default_rng(0)
    wav = (0.3 * rng.standard_normal(16000) + 0.1).astype(np.float32)
    ours = normalize_waveform(wav)
    ref = tools.normalize_wav(wav)
    ref = 0.5 * ref / np.max(np.abs(ref))  # read_wav_file's second peak normalisation
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    assert abs(ours.mean()) < 1e-6 and abs(np.abs(ours).max() - 0.5) < 1e-6
    assert np.all(normalize_waveform(np.zeros(100, dtype=np.float32)) == 0)  # silence stays finite


def test_save_round_trip(tmp_path):
    wav = _tone(440.0, 16000)
    path = save_audio(tmp_path / "sub" / "out.wav", wav)
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    np.testing.assert_allclose(load_audio(path), wav, atol=1 / 32768)
    clipped = load_audio(save_audio(tmp_path / "loud.wav", 2 * wav))
    assert np.abs(clipped).max() <= 1.0


def test_save_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "out.wav"
    with pytest.raises(InputError):
        save_audio(target, np.array([0.0, np.nan], dtype=np.float32))
    assert list(tmp_path.iterdir()) == []

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(audio_io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_audio(target, _tone(440.0, 16000))
    assert list(tmp_path.iterdir()) == []


def test_save_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = save_audio(tmp_path / "out.wav", _tone(440.0, 16000))
    before = target.read_bytes()
    monkeypatch.setattr(audio_io.os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        save_audio(target, _tone(880.0, 16000))
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os
    import stat

    from tta.audio.io import write_atomic

    mask = os.umask(0o022)
    try:
        out = write_atomic(tmp_path / "x.json", "{}")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
