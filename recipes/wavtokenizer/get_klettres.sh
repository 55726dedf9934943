#!/bin/sh
# Real speech for recipes/wavtokenizer/tiny-cpu.yaml: Debian's klettres-data (GPL-2+), 1836 human
# voice clips (letters and syllables, ~22 languages, 51 min) under /usr/share/klettres.
set -e
apt-get update
apt-get install -y klettres-data
find /usr/share/klettres -name '*.ogg' | wc -l
