"""Model names and the facts read from /api/show and /api/tags."""

import pytest

from llmtop.ollama.model_facts import canonical_model_name, model_facts, same_model, valid_model_name


@pytest.mark.parametrize(
    "name",
    [
        "llama3.3",
        "llama3.3:70b-instruct-q2_K",
        "namespace/model:tag",
        "hf.co/unsloth/Llama-3.3-70B-Instruct-GGUF:Q2_K",
        "registry.example.com:5000/team/model:v1",
    ],
)
def test_names_ollama_accepts_are_valid(name):
    assert valid_model_name(name)


@pytest.mark.parametrize("name", ["", " llama3.3", "llama 3", "a:b:c", "x/../y", "-rf", "llama3.3:", "/abs"])
def test_malformed_names_are_not(name):
    assert not valid_model_name(name)


def test_latest_tag_is_implied():
    assert canonical_model_name("llama3.3") == "llama3.3:latest"
    assert canonical_model_name("hf.co/org/repo:Q2_K") == "hf.co/org/repo:Q2_K"
    assert canonical_model_name("localhost:5000/x/y") == "localhost:5000/x/y:latest"
    assert same_model("llama3.3", "llama3.3:latest")
    assert same_model("HF.co/Org/Repo:Q2_K", "hf.co/org/repo:q2_k")
    assert not same_model("llama3.3", "llama3.3:70b")


SHOW = {
    "details": {"family": "llama", "parameter_size": "70.6B", "quantization_level": "Q4_K_M"},
    "model_info": {"general.architecture": "llama", "llama.block_count": 80, "general.parameter_count": 70553706496},
}
TAGS = {"models": [{"name": "phi4:latest", "size": 9053116391}, {"name": "llama3.3:latest", "size": 42520413916}]}


def test_facts_combine_show_and_tags():
    facts = model_facts("llama3.3", SHOW, TAGS)
    assert (facts.parameter_size, facts.quantization, facts.family) == ("70.6B", "Q4_K_M", "llama")
    assert facts.size_bytes == 42520413916
    assert facts.block_count == 80
    assert facts.layers_total == 81  # 80 repeating blocks + the output layer, as in "offloaded 27/81"


def test_unknown_architecture_key_still_finds_block_count():
    show = {"details": {}, "model_info": {"general.architecture": "newarch", "newarch2.block_count": 62}}
    assert model_facts("x", show, {"models": []}).block_count == 62


def test_missing_figures_stay_unknown():
    facts = model_facts("ghost", {"details": {"parameter_size": ""}}, {"models": [{"name": "other:latest", "size": 5}]})
    assert facts.parameter_size is None
    assert facts.size_bytes is None
    assert facts.layers_total is None
