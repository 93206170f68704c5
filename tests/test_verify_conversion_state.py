"""What the repository says about the conversion: the converted config's key map for the agents,
and whether conversion is done (converted weights present, strict-loading, PORT_STATUS.md)."""

from __future__ import annotations

import json

from harness.contracts import load_packet
from harness.evals.fixtures import write_example_repo
from harness.sandbox.workspace import Workspace
from harness.verify.conversion_state import config_key_map, conversion_state


def _setup(tmp_path, component):
    ex = write_example_repo(tmp_path / "example")
    ws = Workspace.create(ex.repo, "conv", official_ref_dir=ex.official_dir, root=tmp_path / "home")
    return ex, ws, load_packet(ex.packets[f"{component}:parity-debug"])


def test_key_map_names_official_to_native_from_the_script_then_by_value(tmp_path):
    ex, ws, packet = _setup(tmp_path, "text_encoder")
    text = config_key_map(ws, packet)
    assert text.startswith("Converted config key map (official -> native): configs/text_encoder.json (official) "
                           "against converted_weights/tinyvid/text_encoder/config.json")
    # Renamed keys come from the conversion script's name table (parsed, never run); equal values
    # alone could not tell d_kv from relative_attention_num_buckets (both 8).
    assert "- d_model -> hidden_size (= 32; named in the conversion script)" in text
    assert "- d_kv -> head_dim (= 8; named in the conversion script)" in text
    assert "- relative_attention_num_buckets -> rel_pos_num_buckets (= 8; named in the conversion script)" in text
    assert "- text_len -> text_len (= 16)" in text
    assert "official keys the converted config does not carry: model_type" in text


def test_key_map_shows_a_converted_value_that_differs(tmp_path):
    ex, ws, packet = _setup(tmp_path, "vae")
    config = ws.path / "converted_weights/tinyvid/vae/config.json"
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "scaling_factor": 0.25}))
    text = config_key_map(ws, packet)
    assert "- scaling_factor -> scaling_factor: VALUES DIFFER (official 0.5, converted 0.25)" in text
    assert "- latent_channels -> latent_channels (= 4)" in text


def test_conversion_is_done_only_with_weights_a_strict_load_and_no_pending_port_status(tmp_path):
    ex, ws, packet = _setup(tmp_path, "vae")
    state = conversion_state(ws, packet, "pass")
    assert state.done and state.converted_present and state.port_status == "pass"
    assert not conversion_state(ws, packet, "not_run").done  # nobody saw the weights strict-load
    status = ws.path / packet.port_state_file
    status.write_text(status.read_text().replace("vaes/tinyvid.py` | `not_started` | `pass` |",
                                                 "vaes/tinyvid.py` | `not_started` | `retry requested` |"))
    assert not conversion_state(ws, packet, "pass").done
    for weights in (ws.path / "converted_weights/tinyvid/vae").glob("*.safetensors"):
        weights.unlink()
    assert not conversion_state(ws, packet, "pass").converted_present
