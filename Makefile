# libping32dlp's C library: build and install libping32dlp.so / .a, ping32dlp.h and ping32dlp.pc.
#
#   make                                 # cargo build --release -p ping32dlp-ffi
#   sudo make install                    # into /usr/local (runs ldconfig); builds first if
#                                        # nothing is built (run `make` as yourself first when
#                                        # cargo is not on root's PATH)
#   make install PREFIX=$HOME/.local     # anywhere; then PKG_CONFIG_PATH=$HOME/.local/lib/pkgconfig
#   make uninstall PREFIX=...
#
# DESTDIR is honoured for packaging. The Rust toolchain (cargo) must be on PATH.

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PCDIR      ?= $(LIBDIR)/pkgconfig
CARGO      ?= cargo
TARGET_DIR ?= $(CURDIR)/target

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
RELEASE := $(TARGET_DIR)/release

.PHONY: all build install uninstall
all: build

build:
	CARGO_TARGET_DIR=$(TARGET_DIR) $(CARGO) build --release --locked -p ping32dlp-ffi

$(RELEASE)/libping32dlp.so $(RELEASE)/libping32dlp.a:
	CARGO_TARGET_DIR=$(TARGET_DIR) $(CARGO) build --release --locked -p ping32dlp-ffi

install: $(RELEASE)/libping32dlp.so $(RELEASE)/libping32dlp.a
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PCDIR)
	install -m 0755 $(RELEASE)/libping32dlp.so $(DESTDIR)$(LIBDIR)/libping32dlp.so.$(VERSION)
	ln -sf libping32dlp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libping32dlp.so.$(MAJOR)
	ln -sf libping32dlp.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libping32dlp.so
	install -m 0644 $(RELEASE)/libping32dlp.a $(DESTDIR)$(LIBDIR)/libping32dlp.a
	install -m 0644 include/ping32dlp.h $(DESTDIR)$(INCLUDEDIR)/ping32dlp.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' ffi/ping32dlp.pc.in > $(DESTDIR)$(PCDIR)/ping32dlp.pc
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi
	@echo "installed libping32dlp $(VERSION) into $(DESTDIR)$(PREFIX)"
	@case "$$(pkg-config --variable pc_path pkg-config 2>/dev/null)" in \
	  *"$(PCDIR)"*) ;; \
	  *) echo "note: export PKG_CONFIG_PATH=$(PCDIR) (and LD_LIBRARY_PATH=$(LIBDIR) to run)";; esac

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libping32dlp.so $(DESTDIR)$(LIBDIR)/libping32dlp.so.$(MAJOR) \
	      $(DESTDIR)$(LIBDIR)/libping32dlp.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libping32dlp.a \
	      $(DESTDIR)$(INCLUDEDIR)/ping32dlp.h $(DESTDIR)$(PCDIR)/ping32dlp.pc
