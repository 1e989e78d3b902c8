#!/usr/bin/env bash
# Install qc-station on Raspberry Pi OS Bookworm (Pi 4 or 5), run as root from a clone:
#   sudo firmware_config/install.sh
# picamera2 and lgpio come from apt (they need the Pi's libcamera and kernel headers),
# so the venv is created with --system-site-packages to see them.
set -euo pipefail

APP_DIR=${APP_DIR:-/opt/qc-station}
DATA_DIR=${DATA_DIR:-/var/lib/qc-station}
CONF_DIR=${CONF_DIR:-/etc/qc-station}
SERVICE_USER=${SERVICE_USER:-qc-station}
SRC_DIR=$(cd "$(dirname "$0")/.." && pwd)

[ "$(id -u)" = 0 ] || { echo "run as root (sudo $0)" >&2; exit 1; }

apt-get update
apt-get install -y --no-install-recommends \
    python3 python3-venv python3-pip python3-picamera2 python3-lgpio python3-opencv git

id -u "$SERVICE_USER" >/dev/null 2>&1 || \
    useradd --system --home-dir "$DATA_DIR" --shell /usr/sbin/nologin "$SERVICE_USER"
usermod -a -G gpio,video "$SERVICE_USER"

if [ "$SRC_DIR" != "$APP_DIR" ]; then
    mkdir -p "$APP_DIR"
    cp -a "$SRC_DIR/." "$APP_DIR/"
fi
python3 -m venv --system-site-packages "$APP_DIR/.venv"
"$APP_DIR/.venv/bin/pip" install -q -e "$APP_DIR[pi]"

install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0750 "$DATA_DIR"
install -d -m 0755 "$CONF_DIR"
[ -f "$CONF_DIR/station.toml" ] || \
    sed -e "s#prototypes/resilience-adult.toml#$APP_DIR/firmware_config/prototypes/resilience-adult.toml#" \
        -e "s#../calibration/station-1.json#$DATA_DIR/calibration.json#" \
        "$APP_DIR/firmware_config/station.toml" > "$CONF_DIR/station.toml"

# Fewer SD-card writes: cap the journal (the QC log lives in $DATA_DIR).
install -d /etc/systemd/journald.conf.d
cat > /etc/systemd/journald.conf.d/qc-station.conf <<'CONF'
[Journal]
SystemMaxUse=64M
RuntimeMaxUse=32M
CONF

install -m 0644 "$APP_DIR/firmware_config/qc-station.service" /etc/systemd/system/qc-station.service
systemctl daemon-reload
systemctl enable qc-station.service
echo "installed. Calibrate first (qc-station calibrate ... --out $DATA_DIR/calibration.json),"
echo "edit $CONF_DIR/station.toml, then: sudo systemctl start qc-station"
