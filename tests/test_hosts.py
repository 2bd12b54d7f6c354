"""OLLAMA_HOST and --host are read the way the ollama CLI reads them."""

import pytest

from llmtop.ollama.hosts import HostError, is_local, ollama_base_url


@pytest.mark.parametrize(
    ("setting", "url"),
    [
        (None, "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434"),
        ("1.2.3.4", "http://1.2.3.4:11434"),
        (":56789", "http://127.0.0.1:56789"),
        ("example.com:56789", "http://example.com:56789"),
        ("http://example.com", "http://example.com:80"),
        ("https://example.com", "https://example.com:443"),
        ("HTTPS://example.com:8443/ollama/", "https://example.com:8443/ollama"),
        ("example.com/path", "http://example.com:11434/path"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("0.0.0.0:8080", "http://127.0.0.1:8080"),
        ("[::]:11434", "http://[::1]:11434"),
        ("[2001:db8::1]", "http://[2001:db8::1]:11434"),
        ("https://[2001:db8::1]:56789", "https://[2001:db8::1]:56789"),
        ("  localhost:11434  ", "http://localhost:11434"),
    ],
)
def test_host_settings_read_as_the_ollama_cli_reads_them(setting, url):
    assert ollama_base_url(setting) == url


@pytest.mark.parametrize(
    "setting", ["ftp://example.com", "example.com:port", "http://host:99999", "http://x/?q=1", "a b:1"]
)
def test_unreadable_hosts_are_refused_with_the_setting_named(setting):
    with pytest.raises(HostError) as info:
        ollama_base_url(setting)
    assert setting.strip().split(":")[0] in str(info.value)


def test_loopback_and_own_addresses_are_local():
    assert is_local("http://127.0.0.1:11434")
    assert is_local("http://localhost:11434")
    assert is_local("http://[::1]:11434")
    assert is_local("http://192.168.1.20:11434", frozenset({"192.168.1.20"}))
    assert not is_local("http://192.168.1.20:11434")
    assert not is_local("http://gpu-box.lan:11434")
