# One image for the dashboard (gunicorn) and the job workers (`rnnvis worker`).
#   docker build -t rnnvis .                                   # torch from PyPI (CUDA-enabled wheels)
#   docker build -t rnnvis --build-arg PIP_EXTRA_INDEX_URL=... # e.g. PyTorch's CPU-only wheel index: a smaller image
# See docs/deployment.md.
FROM python:3.11-slim

ARG PIP_EXTRA_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RNNVIS_STORE=/data/store \
    RNNVIS_HOST=0.0.0.0

WORKDIR /srv/rnnvis

# Dependencies first (cached while only the code changes).
COPY pyproject.toml README.md ./
RUN mkdir -p app analytics models workers \
    && touch app/__init__.py analytics/__init__.py models/__init__.py workers/__init__.py \
    && pip install ${PIP_EXTRA_INDEX_URL:+--extra-index-url "$PIP_EXTRA_INDEX_URL"} . "gunicorn==27.0.1" \
    && pip uninstall -y rnnvis

COPY app ./app
COPY analytics ./analytics
COPY models ./models
COPY workers ./workers
RUN pip install --no-deps . \
    && useradd --create-home --uid 1000 rnnvis \
    && mkdir -p /data/store /run/rnnvis && chown -R rnnvis:rnnvis /data /run/rnnvis

USER rnnvis
VOLUME ["/data"]
EXPOSE 8050
# The compose file picks the command per service (the dashboard on a unix socket in /run/rnnvis, behind nginx);
# alone, the image serves the dashboard on the container's port 8050: publish it on loopback, or put a proxy in front.
CMD ["gunicorn", "--bind", "0.0.0.0:8050", "--workers", "2", "--threads", "4", "--timeout", "120", \
     "app.wsgi:server"]
