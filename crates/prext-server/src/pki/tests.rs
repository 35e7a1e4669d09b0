//! Unit tests of the standalone PKI: reuse and reissue rules, names and usages.

//! Private-logic tests; the public behaviour (files, reuse, kubeconfig) is tested end to end in
//! `tests/tls.rs`.
use super::*;

fn write_leaf(dir: &Path, cert_pem: &str, key_pem: &str) {
    std::fs::write(dir.join("serving.crt"), cert_pem).expect("write");
    std::fs::write(dir.join("serving.key"), key_pem).expect("write");
}

#[test]
fn expiring_foreign_or_mismatched_certificates_are_reissued() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = ensure(tmp.path(), &[]).expect("first");
    let pki_dir = tmp.path().join("pki");
    let check = |cert: &str, key: &str| {
        let ca_der = first_cert_der(&first.ca_cert_pem).expect("ca");
        let sans: Vec<_> = DEFAULT_SANS.iter().map(|s| San::parse(s).expect("san")).collect();
        Leaf::Serving(&sans).check(&ca_der, cert, key)
    };
    assert_eq!(check(&first.server_cert_pem, &first.server_key_pem), Ok(()));

    // Correctly signed with every SAN, but expiring in 10 days.
    let mut ca = Ca::load_or_create(&pki_dir).expect("ca");
    let mut params = Leaf::Serving(&[]).params().expect("params");
    params.subject_alt_names = DEFAULT_SANS
        .iter()
        .map(|s| San::parse(s).and_then(|san| san.to_rcgen()))
        .collect::<Result<_, _>>()
        .expect("sans");
    set_validity(&mut params, Duration::from_secs(10 * 86_400));
    let key = KeyPair::generate().expect("key");
    let short = params
        .signed_by(&key, ca.issuer().expect("issuer"))
        .expect("cert");
    let short_pem = short.pem();
    assert_eq!(
        check(&short_pem, &key.serialize_pem()),
        Err("expires within 30 days".into())
    );
    write_leaf(&pki_dir, &short_pem, &key.serialize_pem());
    let renewed = ensure(tmp.path(), &[]).expect("renew");
    assert_ne!(renewed.server_cert_pem, short_pem);
    assert_eq!(check(&renewed.server_cert_pem, &renewed.server_key_pem), Ok(()));

    // Issued by another CA with the very same subject (CN=prext-ca): the signature gives it
    // away.
    let other = tempfile::tempdir().expect("tempdir");
    let foreign = ensure(other.path(), &[]).expect("other");
    let verdict = check(&foreign.server_cert_pem, &foreign.server_key_pem);
    assert!(
        verdict.as_ref().is_err_and(|e| e.contains("does not verify")),
        "{verdict:?}"
    );
    write_leaf(&pki_dir, &foreign.server_cert_pem, &foreign.server_key_pem);
    let fixed = ensure(tmp.path(), &[]).expect("fix");
    assert_ne!(fixed.server_cert_pem, foreign.server_cert_pem);
    assert_eq!(fixed.ca_cert_pem, first.ca_cert_pem);

    // A key that does not belong to the certificate.
    let verdict = check(&fixed.server_cert_pem, &foreign.server_key_pem);
    assert_eq!(verdict, Err("certificate does not match its key".into()));
}

#[test]
fn admin_certificate_must_carry_the_admin_subject() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = ensure(tmp.path(), &[]).expect("pki");
    let ca_der = first_cert_der(&pki.ca_cert_pem).expect("ca");
    assert_eq!(
        Leaf::Admin.check(&ca_der, &pki.admin_cert_pem, &pki.admin_key_pem),
        Ok(())
    );
    // The serving certificate is CA-signed but has neither the subject nor the clientAuth EKU.
    let verdict = Leaf::Admin.check(&ca_der, &pki.server_cert_pem, &pki.server_key_pem);
    assert!(verdict.is_err());
}

#[test]
fn san_parsing() {
    assert_eq!(
        San::parse(" 10.1.2.3 ").expect("ip"),
        San::Ip([10, 1, 2, 3].into())
    );
    assert_eq!(
        San::parse("::1").expect("ip"),
        San::Ip(std::net::Ipv6Addr::LOCALHOST.into())
    );
    assert_eq!(
        San::parse("Prext.Example").expect("dns"),
        San::Dns("prext.example".into())
    );
    assert!(San::parse("*.prext.svc").is_ok());
    assert!(San::parse(&format!("{}.example", "a".repeat(63))).is_ok());
    let too_long_label = format!("{}.example", "a".repeat(64));
    for bad in [
        "",
        "has space",
        "a..b",
        "under_score",
        "*",
        "a.*.b",
        "caf\u{e9}",
        &too_long_label,
    ] {
        assert!(matches!(San::parse(bad), Err(PkiError::InvalidSan(_))), "{bad:?}");
    }
}

#[test]
fn a_missing_ca_certificate_next_to_other_pki_files_is_an_error_not_a_new_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = ensure(tmp.path(), &[]).expect("first");
    let pki_dir = tmp.path().join("pki");
    std::fs::remove_file(pki_dir.join("ca.crt")).expect("remove ca.crt");
    let err = ensure(tmp.path(), &[]).expect_err("refused");
    let message = err.to_string();
    assert!(message.contains("ca.crt is missing but ca.key"), "{message}");
    assert!(!pki_dir.join("ca.crt").exists(), "no new CA minted");
    // Restored, everything is reused as before.
    std::fs::write(pki_dir.join("ca.crt"), &first.ca_cert_pem).expect("restore");
    let again = ensure(tmp.path(), &[]).expect("after restore");
    assert_eq!(again.admin_cert_pem, first.admin_cert_pem);
}
