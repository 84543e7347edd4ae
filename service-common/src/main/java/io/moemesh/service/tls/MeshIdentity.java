package io.moemesh.service.tls;

import java.net.URI;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * Who a peer of the mesh is: the {@code <name>} of the one URI subject alternative name
 * {@code spiffe://moemesh/<name>} in its certificate (a SPIFFE ID in the trust domain {@code moemesh}; the
 * SPIFFE X.509-SVID format, https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md). Names are the
 * service or role: {@code expert-0}, {@code gateway}, {@code placer} (the launcher), {@code router}. The
 * subject CN is not used: a URI SAN is what cert-manager ({@code spec.uris}) and SPIFFE issuers set, and it
 * cannot be confused with a host name. A certificate of the mesh CA without such a SAN (or with two) is still
 * a member of the mesh, but has no identity.
 *
 * <p>{@link #LOCAL_OWNER} is the one identity not read from a certificate: a call on a {@code peer-uid} domain socket
 * from a process the kernel reports as the server's own uid ({@code io.moemesh.service.grpc.UnixSocketSecurity}). That
 * uid can read every private key of its mesh (the state directory's {@code tls/}), so it could present any identity
 * anyway; authorization lets it do what any identity may (LoadAssignment included). Its name is reserved: a
 * certificate claiming {@code spiffe://moemesh/local-owner} has no identity.
 *
 * @param name lower-case letters, digits, '-' and '.', 1 to 63 characters, starting and ending alphanumeric
 */
public record MeshIdentity(String name) {
    public static final String SPIFFE_PREFIX = "spiffe://moemesh/";
    private static final Pattern NAME = Pattern.compile("[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?");
    /** GeneralName tag of a uniformResourceIdentifier (RFC 5280 section 4.2.1.6). */
    private static final int URI_NAME = 6;
    /** The same-host owner: a kernel-verified peer of the server's own uid (see the class comment; after NAME). */
    public static final MeshIdentity LOCAL_OWNER = new MeshIdentity("local-owner");

    public MeshIdentity {
        if (name == null || !NAME.matcher(name).matches()) {
            throw new IllegalArgumentException("mesh identity \"" + name + "\" must be 1-63 lower-case letters, digits, "
                    + "'-' or '.', starting and ending with a letter or digit");
        }
    }

    /** {@code spiffe://moemesh/<name>}. */
    public URI uri() {
        return URI.create(SPIFFE_PREFIX + name);
    }

    /** The identity a certificate carries, if exactly one valid {@code spiffe://moemesh/} URI SAN is in it. */
    public static Optional<MeshIdentity> of(X509Certificate certificate) {
        Collection<List<?>> sans;
        try {
            sans = certificate.getSubjectAlternativeNames();
        } catch (CertificateParsingException e) {
            return Optional.empty();
        }
        if (sans == null) {
            return Optional.empty();
        }
        List<String> names = new ArrayList<>();
        for (List<?> san : sans) {
            if (san.size() == 2 && san.get(0) instanceof Integer tag && tag == URI_NAME
                    && san.get(1) instanceof String uri && uri.startsWith(SPIFFE_PREFIX)) {
                names.add(uri.substring(SPIFFE_PREFIX.length()));
            }
        }
        if (names.size() != 1 || !NAME.matcher(names.getFirst()).matches()
                || names.getFirst().equals(LOCAL_OWNER.name())) {
            return Optional.empty();
        }
        return Optional.of(new MeshIdentity(names.getFirst()));
    }

    /** Whether this is {@link #LOCAL_OWNER}, the kernel-verified same-uid peer of a domain socket. */
    public boolean isLocalOwner() {
        return equals(LOCAL_OWNER);
    }

    @Override
    public String toString() {
        return SPIFFE_PREFIX + name;
    }
}
