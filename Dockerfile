# The ragstream worker image (docker-compose.yml builds it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY streams ./streams
COPY agents ./agents
COPY services ./services
COPY stores ./stores
COPY ragstream ./ragstream
RUN pip install .
RUN useradd --create-home ragstream && mkdir -p /data && chown ragstream /data
USER ragstream
ENV RAGSTREAM_DATA_DIR=/data
ENTRYPOINT ["ragstream"]
CMD ["worker"]
