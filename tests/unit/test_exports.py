import ingest
import ragapp


def test_public_api_is_pinned() -> None:
    assert sorted(ragapp.__all__) == [
        "Answer",
        "RagappError",
        "Settings",
        "Source",
        "Timings",
        "__version__",
        "load_settings",
    ]
    assert sorted(ingest.__all__) == ["IngestReport", "ingest_paths"]
    for name in ragapp.__all__:
        assert hasattr(ragapp, name)
