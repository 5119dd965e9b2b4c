# stylestream workers. CPU image by default (PyTorch's CPU wheels: no CUDA libraries);
# the GPU variant (CUDA torch + faiss-gpu) is the same file with two build arguments:
#   docker build -t stylestream:cpu .
#   docker build -t stylestream:gpu --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 \
#                --build-arg FAISS=faiss-gpu-cu12 .
# (docker-compose: `--env-file deploy/gpu.env -f docker-compose.yml -f docker-compose.gpu.yml`)
FROM python:3.11-slim

# Where pip looks for torch/torchvision first: the CPU or a CUDA wheel index of PyTorch.
# pyproject pins torch==X; the index's X+cpu / X+cu126 wheel satisfies that pin.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# faiss-cpu (a dependency) or the pyproject `gpu` extra's faiss-gpu-cu12 in its place
ARG FAISS=faiss-cpu

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY models ./models
COPY serving ./serving
COPY evaluation ./evaluation
COPY scripts ./scripts
RUN pip install --extra-index-url "$TORCH_INDEX" . \
 && if [ "$FAISS" = "faiss-gpu-cu12" ]; then \
        pip install --extra-index-url "$TORCH_INDEX" ".[gpu]" \
        && pip uninstall -y faiss-cpu \
        && pip install --force-reinstall --no-deps \
               "faiss-gpu-cu12==$(pip show faiss-gpu-cu12 | sed -n 's/^Version: //p')"; \
    elif [ "$FAISS" != "faiss-cpu" ]; then echo "FAISS must be faiss-cpu or faiss-gpu-cu12"; exit 1; \
    fi \
 && python -c "import faiss, torch; print('torch', torch.__version__, 'faiss', faiss.__version__)"

RUN useradd --create-home --uid 10001 stylestream \
 && mkdir -p /var/lib/stylestream /data && chown stylestream /var/lib/stylestream
USER stylestream
ENV STYLESTREAM_HOME=/var/lib/stylestream
WORKDIR /var/lib/stylestream
CMD ["stylestream", "--help"]
