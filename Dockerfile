# scarlab in a container: CPU by default.
#
#   docker build -t scarlab .
#   docker run --rm -p 8501:8501 scarlab                    # then open http://127.0.0.1:8501 on the host
#   docker run --rm -p 127.0.0.1:8501:8501 scarlab          # recommended on a shared host: the host's loopback only
#
# GPU: build on a CUDA base image that has Python 3.10+ (torch 2.14.1's PyPI wheels bring their own CUDA
# libraries, so a runtime image is enough), and run with the NVIDIA container toolkit:
#   docker build --build-arg BASE=nvidia/cuda:13.0.0-runtime-ubuntu24.04 -t scarlab:cuda .
#   docker run --rm --gpus all -p 127.0.0.1:8501:8501 scarlab:cuda
ARG BASE=python:3.11-slim
FROM ${BASE}

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
# CUDA base images ship without Python; python:*-slim already has it.
RUN if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv --help >/dev/null 2>&1; then \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /opt/scarlab
# Installed the way the Makefile does it: a venv, the package with its dev extra under constraints.txt, its bytecode
# (an editable install writes none), and umap-learn's numba code compiled into numba's cache (else the first fit's).
RUN python3 -m venv /opt/scarlab/.venv
ENV PATH=/opt/scarlab/.venv/bin:$PATH
COPY . /opt/scarlab
RUN python -m pip install -c constraints.txt -e '.[dev]'
RUN python -m compileall -q scarlab dashboard && python -c 'import umap'

EXPOSE 8501
# The dashboard binds 127.0.0.1 by default; inside a container that address is unreachable from the host, so
# the image sets STREAMLIT_SERVER_ADDRESS=0.0.0.0, which `scarlab demo` / `scarlab dashboard` use when no
# --address is given: the server listens on all of the container's interfaces and `docker run -p 8501:8501`
# reaches it. Plain `-p 8501:8501` publishes it on every interface of the host, so on a shared host publish it
# on the host's loopback only: `docker run -p 127.0.0.1:8501:8501`.
ENV STREAMLIT_SERVER_ADDRESS=0.0.0.0 STREAMLIT_SERVER_HEADLESS=true STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
CMD ["scarlab", "demo", "--port", "8501"]
