//! The intent's rule for free text, written out rather than taken from the compiler so that
//! tests hold the compiler to it. Shared by `compiler/tests/properties.rs` and the fuzz checks
//! (`fuzz/checks/`), which include this file by path.

/// True when the intent's one rule for text refuses `c`: C0 controls but tab (and newline in
/// multi-line fields), DEL, C1 controls and Unicode noncharacters.
pub(crate) fn refused(c: char, multi_line: bool) -> bool {
    let u = u32::from(c);
    match c {
        '\t' => false,
        '\n' => !multi_line,
        _ => {
            u < 0x20
                || (0x7f..=0x9f).contains(&u)
                || (0xfdd0..=0xfdef).contains(&u)
                || u & 0xfffe == 0xfffe
        }
    }
}
