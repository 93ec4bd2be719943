#!/bin/sh
# trivial notify script for the config corpus
exit 0
