//! The busybox image's root filesystem, assembled as a tar archive in memory.

/// Applets linked into `/bin`, separated by whitespace.
pub const BUSYBOX_APPLETS: &str = "\
sh ash [ [[ test echo printf cat ls head tail yes sleep usleep dd wc env id whoami touch \
mkdir rmdir rm cp mv ln chmod pwd basename dirname readlink realpath mktemp stat sed \
grep egrep fgrep awk cut tr sort uniq tee xargs find expr seq true false kill ps top nc \
wget ping nslookup timeout time date hostname uname nproc free df du which sha256sum \
md5sum base64 od hexdump xxd diff cmp gzip gunzip zcat tar vi less";

/// The root filesystem of the busybox image as an uncompressed tar archive.
///
/// # Errors
/// Only if writing into the in-memory archive fails.
pub fn busybox_rootfs(busybox: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        match link {
            Some(target) => tar.append_link(&mut h, path, target),
            None => tar.append_data(&mut h, path, data),
        }
    };
    for dir in ["bin", "etc", "usr", "usr/bin", "tmp", "work"] {
        let mode = if matches!(dir, "tmp" | "work") { 0o1777 } else { 0o755 };
        add(dir, tar::EntryType::Directory, mode, &[], None)?;
    }
    add("bin/busybox", tar::EntryType::Regular, 0o755, busybox, None)?;
    for applet in BUSYBOX_APPLETS.split_whitespace() {
        let path = format!("bin/{applet}");
        add(&path, tar::EntryType::Symlink, 0o777, &[], Some("busybox"))?;
    }
    add("usr/bin/env", tar::EntryType::Symlink, 0o777, &[], Some("/bin/busybox"))?;
    let passwd = "root:x:0:0:root:/root:/bin/sh\nsandbox:x:65534:65534:sandbox:/work:/bin/sh\n";
    let group = "root:x:0:\nsandbox:x:65534:\n";
    add("etc/passwd", tar::EntryType::Regular, 0o644, passwd.as_bytes(), None)?;
    add("etc/group", tar::EntryType::Regular, 0o644, group.as_bytes(), None)?;
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootfs_has_busybox_applets_and_users() {
        let archive = busybox_rootfs(b"\x7fELF").expect("archive");
        let mut tar = tar::Archive::new(&archive[..]);
        let mut names = Vec::new();
        for entry in tar.entries().expect("entries") {
            let entry = entry.expect("entry");
            names.push(entry.path().expect("path").display().to_string());
        }
        for want in ["bin/busybox", "bin/sh", "bin/yes", "etc/passwd", "work", "tmp"] {
            assert!(names.iter().any(|n| n.trim_end_matches('/') == want), "{want}");
        }
    }
}
