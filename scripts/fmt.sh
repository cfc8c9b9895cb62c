#!/usr/bin/env bash
# Formats every Swift file in place with the committed .swift-format configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
swift format format -i -r Sources Tests Package.swift
