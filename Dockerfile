# syntax=docker/dockerfile:1
# Build: docker build -t tidings .
# Run:   docker run -p 2525:2525 -p 8000:8000 -v tidings-var:/app/var tidings

FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY app ./app
COPY smtp ./smtp
COPY digest ./digest
RUN pip install --no-cache-dir --upgrade pip && pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 tidings
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY templates ./templates
RUN mkdir -p /app/var && chown tidings:tidings /app/var
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TIDINGS_DATA_DIR=/app/var \
    TIDINGS_TEMPLATES_DIR=/app/templates \
    TIDINGS_SMTP_HOST=0.0.0.0 \
    TIDINGS_HTTP_HOST=0.0.0.0
USER tidings
VOLUME ["/app/var"]
EXPOSE 2525 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
# `serve` upgrades the database before it starts listening.
CMD ["tidings", "serve"]
