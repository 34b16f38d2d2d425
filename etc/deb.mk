# etc/deb.mk - `make deb`: a Debian package of mtad, included by
# GNUmakefile. The packaging sources are in etc/deb/ (etc/deb/README).
#
#   make deb     $(DEB_DIR)/mtad_$(DEB_VERSION)_$(DEB_ARCH).deb, where
#                DEB_DIR is $(BUILD)/deb unless set
#
# 1. `make install DESTDIR=<stage> PREFIX=/usr CONFDIR=/etc/mtad
#    UNITDIR=/lib/systemd/system` stages whatever make install installs, in
#    a fresh $(DEB_DIR)/work/debian/mtad (the layout dpkg-shlibdeps expects).
#    The unit goes to /lib/systemd/system, where Debian 12's packages put
#    theirs (the same directory as /usr/lib/systemd/system after usrmerge).
# 2. etc/deb/build-deb adds what Debian wants (modes, stripped programs,
#    gzipped man pages, /usr/share/doc/mtad, DEBIAN/ with Depends from
#    dpkg-shlibdeps and every staged /etc file a conffile) and runs
#    dpkg-deb --build --root-owner-group.
# Needs dpkg-dev and binutils (etc/packages), no root. Built as it is from
# $(BUILD): BUILD=build-asan packages the sanitizer build. Check the result
# with `lintian build/deb/mtad_*.deb`; install it with
# `apt install ./build/deb/mtad_*.deb` (INSTALL, "Debian package").
#
# The version, DEB_VERSION (set it on the command line to override):
#   0.15.0          DEB_UPSTREAM: util/util.h's MTAD_VERSION, what
#                   mtad -V prints and the man pages say (one source).
#   +gitDATE.TIME.HASH
#                   the UTC commit date and time and the short hash of HEAD
#                   when built in a git checkout: each later commit's
#                   package is an upgrade of the one before. Left out
#                   without git, or when git refuses the checkout (another
#                   user's, see git config safe.directory): 0.15.0-1.
#   -1              the Debian revision: not a native package, so the
#                   changelog is changelog.Debian.gz.
# SOURCE_DATE_EPOCH is HEAD's commit time: the changelog entry's date and
# the files' times in the package, the same for every build of a commit.

DEB_DIR        ?= $(BUILD)/deb
DEB_UPSTREAM   := $(shell sed -n 's/^\#define MTAD_VERSION "\(.*\)"$$/\1/p' util/util.h)
DEB_MAINTAINER ?= mtad maintainers <maintainers@users.noreply.r-seed-79767073.example>
DEB_GIT         = $(shell TZ=UTC git log -1 --format=%cd.%h --date=format-local:%Y%m%d.%H%M%S 2>/dev/null)
DEB_VERSION    ?= $(DEB_UPSTREAM)$(if $(DEB_GIT),+git$(DEB_GIT))-1
DEB_ARCH        = $(shell dpkg --print-architecture)
DEB_EPOCH       = $(shell git log -1 --format=%ct 2>/dev/null)
DEB_COMMIT      = $(shell git rev-parse HEAD 2>/dev/null)
DEB_FILE        = $(DEB_DIR)/mtad_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_STAGE       = $(abspath $(DEB_DIR))/work/debian/mtad

.PHONY: deb

# The sub-make installs the programs this target already brought up to
# date (or that the caller's -o declared final): -o keeps it from
# rebuilding them without the caller's flags.
deb: $(BUILD)/mtad $(BUILD)/mtaq
	rm -rf '$(DEB_DIR)/work' '$(DEB_DIR)'/mtad_*.deb
	$(MAKE) --no-print-directory -o '$(BUILD)/mtad' -o '$(BUILD)/mtaq' install \
		BUILD='$(BUILD)' DESTDIR='$(DEB_STAGE)' \
		PREFIX=/usr CONFDIR=/etc/mtad UNITDIR=/lib/systemd/system
	$(if $(DEB_EPOCH),SOURCE_DATE_EPOCH=$(DEB_EPOCH)) etc/deb/build-deb \
		'$(DEB_DIR)/work' '$(DEB_FILE)' '$(DEB_VERSION)' '$(DEB_ARCH)' \
		'$(DEB_MAINTAINER)' '$(if $(DEB_COMMIT),git commit $(DEB_COMMIT))'
