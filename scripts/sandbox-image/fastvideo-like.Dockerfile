# FastVideo's dev image installs a uv-managed Python as root under root's home and makes the
# venv at /opt/venv from it; root's home is closed to every other user. Built on the sandbox
# image by scripts/build-sandbox-image.sh.
ARG BASE=fastvideo-harness-sandbox:test
FROM ${BASE}
RUN mkdir -p /root/.local/share/uv/python/cpython-3.11/bin \
 && cp /usr/bin/python3.11 /root/.local/share/uv/python/cpython-3.11/bin/python3.11 \
 && for name in python python3 python3.11; do \
      ln -sf /root/.local/share/uv/python/cpython-3.11/bin/python3.11 /opt/venv/bin/$name; done \
 && sed -i 's#^home = .*#home = /root/.local/share/uv/python/cpython-3.11/bin#' /opt/venv/pyvenv.cfg \
 && chmod 700 /root
