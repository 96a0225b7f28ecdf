# vepo-viz app on a GPU machine.
#
#   docker build -t vepo-viz .
#   docker run --gpus all -p 7860:7860 -v ~/.cache/huggingface:/home/app/.cache/huggingface \
#       vepo-viz --model Qwen/Qwen2.5-VL-3B-Instruct
#
# torch from PyPI bundles the CUDA 12 runtime and cuDNN (the nvidia-* wheels), so a slim
# Python base is enough: the host needs an NVIDIA driver and the NVIDIA Container Toolkit
# (`--gpus all`). Without a GPU the same image runs on CPU.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    MPLCONFIGDIR=/tmp/matplotlib \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# An unprivileged user; the Hugging Face cache lives in its home (mount your cache there).
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin app
WORKDIR /app

# Dependencies first (a code change does not reinstall torch).
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY pyproject.toml README.md app.py ./
COPY vepo_viz ./vepo_viz
COPY assets ./assets
COPY sample_data ./sample_data
RUN pip install --no-cache-dir --no-deps . && chown -R app:app /app

USER 1000:1000
ENV HF_HOME=/home/app/.cache/huggingface
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"]

# Inside the container the app must listen on all interfaces to be reachable through -p.
ENTRYPOINT ["python", "app.py", "--host", "0.0.0.0", "--port", "7860"]
CMD ["--model", "embedded"]
