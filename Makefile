# Builds smtpband and smtpban with the version stamped from git, their man
# pages, and the Debian package:
#
#   make deb      dist/smtpban_VERSION_ARCH.deb (static binaries; needs Go
#                 and dpkg-deb on the build host, nothing but nftables on
#                 the mail host)
#   make build    build/smtpband, build/smtpban
#   make man      build/man/smtpband.8, build/man/smtpban.1
#
# VERSION, GOARCH (cross-building), BUILD and DIST may be set on the
# command line.

GO      ?= go
BUILD   ?= build
DIST    ?= dist
# Each computed once (:=), so that every target of one run stamps the same
# version even if a commit lands meanwhile.
ifndef VERSION
VERSION := $(shell packaging/version.sh 2>/dev/null)
endif
ifndef GOARCH
GOARCH  := $(shell $(GO) env GOARCH)
endif
# Debian's name for GOARCH where the two differ.
debarch_386      := i386
debarch_arm      := armhf
debarch_ppc64le  := ppc64el
debarch_mips64le := mips64el
ARCH    ?= $(or $(debarch_$(GOARCH)),$(GOARCH))
# The commit's date: the man pages' date, the changelog's.
DATE    := $(shell git log -1 --format=%cs 2>/dev/null || date -u +%F)
CHANGED := $(shell git log -1 --format=%cD 2>/dev/null || date -uR)
COMMIT  := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

# dpkg-deb dates the package's files to the commit, not the build.
ifndef SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
endif
export SOURCE_DATE_EPOCH

STAGE   := $(BUILD)/deb
DEB     := $(DIST)/smtpban_$(VERSION)_$(ARCH).deb

.PHONY: all build man deb clean version
all: build

# Outside a git checkout there is no version to stamp: say so rather than
# build an unversioned package.
version:
	@test -n '$(VERSION)' || { echo 'no VERSION (not a git checkout?): make VERSION=1.2.3 ...' >&2; exit 1; }

# Static (no cgo: no libc to match on the mail host); -s -w: no symbol
# table or DWARF, as Debian ships binaries stripped.
build: version
	CGO_ENABLED=0 GOARCH=$(GOARCH) $(GO) build -trimpath \
	  -ldflags '-s -w -X main.version=$(VERSION)' \
	  -o $(BUILD)/ ./cmd/smtpband ./cmd/smtpban

man: version
	install -d $(BUILD)/man
	$(GO) run ./packaging/mangen -version '$(VERSION)' -date $(DATE) \
	  -o $(BUILD)/man/smtpband.8 packaging/man/smtpband.8.md
	$(GO) run ./packaging/mangen -version '$(VERSION)' -date $(DATE) \
	  -o $(BUILD)/man/smtpban.1 packaging/man/smtpban.1.md

# The tree dpkg-deb packs: files as installed, control files in DEBIAN/.
deb: build man
	rm -rf $(STAGE)
	install -d $(STAGE)/DEBIAN $(STAGE)/usr/sbin $(STAGE)/usr/bin \
	  $(STAGE)/lib/systemd/system $(STAGE)/etc/smtpban/jails.d \
	  $(STAGE)/usr/share/man/man8 $(STAGE)/usr/share/man/man1 \
	  $(STAGE)/usr/share/bash-completion/completions $(STAGE)/usr/share/doc/smtpban
	install -m 0755 $(BUILD)/smtpband $(STAGE)/usr/sbin/
	install -m 0755 $(BUILD)/smtpban $(STAGE)/usr/bin/
	install -m 0644 configs/smtpband.service $(STAGE)/lib/systemd/system/
	install -m 0644 configs/smtpban.hcl $(STAGE)/etc/smtpban/
	install -m 0644 configs/jails.d/*.hcl $(STAGE)/etc/smtpban/jails.d/
	gzip -9n < $(BUILD)/man/smtpband.8 > $(STAGE)/usr/share/man/man8/smtpband.8.gz
	gzip -9n < $(BUILD)/man/smtpban.1 > $(STAGE)/usr/share/man/man1/smtpban.1.gz
	install -m 0644 packaging/bash-completion/smtpban $(STAGE)/usr/share/bash-completion/completions/
	ln -s smtpban $(STAGE)/usr/share/bash-completion/completions/smtpband
	install -m 0644 packaging/deb/copyright $(STAGE)/usr/share/doc/smtpban/
	# Alert rules, dashboard and the metrics drop-in, to copy where wanted.
	install -d $(STAGE)/usr/share/doc/smtpban/examples/monitoring
	install -m 0644 configs/monitoring/* $(STAGE)/usr/share/doc/smtpban/examples/monitoring/
	install -D -m 0644 packaging/deb/lintian-overrides $(STAGE)/usr/share/lintian/overrides/smtpban
	printf 'smtpban (%s) unstable; urgency=medium\n\n  * Built from git commit %s.\n\n -- %s  %s\n' \
	  '$(VERSION)' '$(COMMIT)' "$$(sed -n 's/^Maintainer: //p' packaging/deb/control.in)" '$(CHANGED)' \
	  | gzip -9n > $(STAGE)/usr/share/doc/smtpban/changelog.gz
	chmod 0644 $(STAGE)/usr/share/man/man*/*.gz $(STAGE)/usr/share/doc/smtpban/changelog.gz
	install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm $(STAGE)/DEBIAN/
	# Everything in /etc is a conffile: an upgrade keeps the admin's edits.
	cd $(STAGE) && find etc -type f | LC_ALL=C sort | sed 's,^,/,' > DEBIAN/conffiles
	cd $(STAGE) && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
	  | xargs -0 md5sum > DEBIAN/md5sums
	sed -e 's/@VERSION@/$(VERSION)/' -e 's/@ARCH@/$(ARCH)/' \
	  -e "s/@SIZE@/$$(du -sk --exclude=DEBIAN $(STAGE) | cut -f1)/" \
	  packaging/deb/control.in > $(STAGE)/DEBIAN/control
	chmod 0644 $(STAGE)/DEBIAN/control $(STAGE)/DEBIAN/conffiles $(STAGE)/DEBIAN/md5sums
	install -d $(DIST)
	dpkg-deb --root-owner-group -Zxz --build $(STAGE) $(DEB)

clean:
	rm -rf $(BUILD) $(DIST)
