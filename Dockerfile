# ragapp's image: the app, its bundled models (no download at run time), llama.cpp and
# llama.cpp's OpenAI-compatible server (the compose file's `llamacpp` service).
#
#   CPU (default):  docker build -t ragapp .
#   CUDA:           docker build -t ragapp:cuda \
#                     --build-arg BUILD_BASE=nvidia/cuda:12.4.1-devel-ubuntu22.04 \
#                     --build-arg RUNTIME_BASE=nvidia/cuda:12.4.1-runtime-ubuntu22.04 \
#                     --build-arg CMAKE_ARGS="-DGGML_CUDA=on -DGGML_NATIVE=OFF -DGGML_AVX2=ON" .
#
# Both bases are apt-based and carry python3.11 (Debian bookworm's default; Ubuntu 22.04's
# universe). Nothing here runs as root at run time.
ARG BUILD_BASE=debian:bookworm-slim
ARG RUNTIME_BASE=debian:bookworm-slim

# --- build: a venv in /opt/ragapp with everything, compilers left behind ------------------------
FROM ${BUILD_BASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3.11 python3.11-venv python3.11-dev build-essential cmake ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# llama.cpp's build flags. The default targets any AVX2 CPU (not -march=native, whose AMX
# instructions fault in VMs without AMX state); the CUDA build passes -DGGML_CUDA=on.
ARG CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
# The CPU build of torch (the embedder runs on the CPU): PyPI's default wheel is a CUDA one
# of several GB. Empty: take torch from PyPI or a wheelhouse given in PIP_FIND_LINKS.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# Optional build-time pip settings (a mirror, a wheelhouse of prebuilt wheels, a CA file).
ARG PIP_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1

RUN python3.11 -m venv /opt/ragapp && /opt/ragapp/bin/pip install -q --upgrade "pip>=24"
ENV PATH=/opt/ragapp/bin:$PATH
WORKDIR /src
COPY requirements/constraints.txt requirements/constraints.txt
RUN pip install -q -c requirements/constraints.txt ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} \
      torch==2.13.0
# llama-cpp-python compiles llama.cpp here (about 5 minutes on 2 cores) unless a wheel of it
# lies in PIP_FIND_LINKS; [server] adds `python -m llama_cpp.server`.
RUN CMAKE_ARGS="$CMAKE_ARGS" pip install -q -c requirements/constraints.txt \
      "llama-cpp-python[server]==0.3.36"
# The dependencies in a layer of their own, keyed on pyproject.toml and the lock only:
# a change to the code reinstalls ragapp alone (seconds), not its ~200 dependencies.
COPY pyproject.toml ./
RUN mkdir -p ragapp ingest && touch README.md ragapp/__init__.py ingest/__init__.py \
 && pip install -q -c requirements/constraints.txt . \
 # unstructured's PDF partitioner imports unstructured-inference; its own dependencies would
 # pull a CUDA torch, and ragapp uses none of its models (as in the Makefile)
 && pip install -q --no-deps -c requirements/constraints.txt unstructured-inference==1.6.14 \
 && pip uninstall -q -y ragapp && rm -rf ragapp ingest build
COPY README.md ./
COPY ragapp ragapp
COPY ingest ingest
RUN pip install -q --no-deps . && rm -rf build && ragapp --help >/dev/null

# --- runtime: Python, the venv, OCR and pandoc for the formats that need them ------------------
FROM ${RUNTIME_BASE} AS runtime
ARG DEBIAN_FRONTEND=noninteractive
# tesseract (scanned PDFs, images), poppler (PDF pages to images), pandoc (odt, rtf, epub):
# without them those files are skipped with the reason, as outside a container.
ARG SYSTEM_DEPS="tesseract-ocr tesseract-ocr-eng poppler-utils pandoc"
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 libgomp1 dumb-init $SYSTEM_DEPS \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin ragapp \
 && mkdir -p /data /docs /models \
 && chown ragapp:ragapp /data
COPY --from=build /opt/ragapp /opt/ragapp
# The bundled GGUF at a fixed path, for `python -m llama_cpp.server --model ...`.
RUN ln -s "$(/opt/ragapp/bin/python -c 'from ragapp.bundled import llm_gguf; print(llm_gguf())')" \
      /opt/bundled-llm.gguf

# ragapp forces its libraries offline itself (ragapp/_offline.py); nothing to set here.
ENV PATH=/opt/ragapp/bin:$PATH RAGAPP_DATA_DIR=/data RAGAPP_CACHE_DIR=/var/cache/ragapp \
    PYTHONUNBUFFERED=1
# The embedder's onnxruntime export, made once here rather than at every container start.
RUN python -c "from ragapp.app import Models; from ragapp.settings import Settings; \
Models(Settings()).embeddings().embed_query('ready')" \
 && chown -R ragapp:ragapp /var/cache/ragapp
USER ragapp
WORKDIR /home/ragapp
VOLUME ["/data"]
EXPOSE 8000
# /healthz answers without a token and without touching the models. Services that run
# something else from this image (llama_cpp.server, the watcher) set their own check.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["dumb-init", "--", "ragapp"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
