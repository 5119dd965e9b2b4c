FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY models ./models
COPY serving ./serving
COPY scripts ./scripts
RUN pip install --no-cache-dir -e .
ENV STYLESTREAM_HOME=/var/lib/stylestream
CMD ["stylestream", "--help"]
