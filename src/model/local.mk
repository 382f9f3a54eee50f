# src/model: file lists of this area (see Makefile.am).
