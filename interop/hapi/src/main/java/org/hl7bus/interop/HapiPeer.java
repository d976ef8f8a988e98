package org.hl7bus.interop;

import ca.uhn.hl7v2.DefaultHapiContext;
import ca.uhn.hl7v2.HapiContext;
import ca.uhn.hl7v2.app.Connection;
import ca.uhn.hl7v2.app.HL7Service;
import ca.uhn.hl7v2.app.Initiator;
import ca.uhn.hl7v2.model.Composite;
import ca.uhn.hl7v2.model.Group;
import ca.uhn.hl7v2.model.Message;
import ca.uhn.hl7v2.model.Primitive;
import ca.uhn.hl7v2.model.Segment;
import ca.uhn.hl7v2.model.Structure;
import ca.uhn.hl7v2.model.Type;
import ca.uhn.hl7v2.model.Varies;
import ca.uhn.hl7v2.parser.PipeParser;
import ca.uhn.hl7v2.protocol.ReceivingApplication;
import ca.uhn.hl7v2.util.Terser;
import ca.uhn.hl7v2.validation.impl.ValidationContextFactory;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * HAPI HL7v2 as a test peer for hl7bus (not part of the product).
 *
 * <pre>
 * send HOST:PORT OUTDIR FILE...   parse each file with HAPI, send it over MLLP, parse the ACK with HAPI;
 *                                 one JSON line per file; what was sent is written to OUTDIR/&lt;MSH-10&gt;.hl7
 * receive PORT OUTDIR             an MLLP receiver: stores each message as received, answers HAPI's AA
 * dump FILE...                    HAPI's parse of each file as "file\tSEG\tocc\tfield\trep\tcomp\tsub\tvalue" lines
 * </pre>
 */
public final class HapiPeer {
  private HapiPeer() {}

  private static int sequence;

  public static void main(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println("usage: send HOST:PORT OUTDIR FILE... | receive PORT OUTDIR | dump FILE...");
      System.exit(2);
    }
    switch (args[0]) {
      case "send" -> send(args[1], Paths.get(args[2]), Arrays.copyOfRange(args, 3, args.length));
      case "receive" -> receive(Integer.parseInt(args[1]), Paths.get(args[2]));
      case "dump" -> dump(Arrays.copyOfRange(args, 1, args.length));
      default -> {
        System.err.println("unknown mode " + args[0]);
        System.exit(2);
      }
    }
  }

  private static HapiContext context() {
    HapiContext ctx = new DefaultHapiContext();
    // Parse what senders send, as an interface engine must; validation is
    // hl7bus's business, not the peer's.
    ctx.setValidationContext(ValidationContextFactory.noValidation());
    return ctx;
  }

  /** Reads a file as one message in ER7 with CR segment terminators. */
  static String read(String file) throws Exception {
    String s = Files.readString(Paths.get(file), StandardCharsets.UTF_8);
    if (s.startsWith("\uFEFF")) {
      s = s.substring(1);
    }
    if (!s.contains("\r")) {
      s = s.replace("\n", "\r");
    } else {
      s = s.replace("\r\n", "\r");
    }
    return s.replaceAll("\r+$", "") + "\r";
  }

  static void send(String addr, Path outDir, String[] files) throws Exception {
    Files.createDirectories(outDir);
    String host = addr.substring(0, addr.lastIndexOf(':'));
    int port = Integer.parseInt(addr.substring(addr.lastIndexOf(':') + 1));
    try (HapiContext ctx = context()) {
      PipeParser parser = ctx.getPipeParser();
      Connection conn = ctx.newClient(host, port, false);
      Initiator initiator = conn.getInitiator();
      initiator.setTimeout(30, TimeUnit.SECONDS);
      for (String file : files) {
        Message msg;
        try {
          msg = parser.parse(read(file));
        } catch (Exception e) {
          System.out.println(json("file", file, "skipped", "HAPI cannot parse it: " + e.getMessage()));
          continue;
        }
        // Corpus files reuse control IDs (MSG00001); a unique one per
        // message lets the test match what arrives with what was sent.
        Terser terser = new Terser(msg);
        String controlId = terser.get("/MSH-10") + "-" + (++sequence);
        terser.set("/MSH-10", controlId);
        String sent = parser.encode(msg);
        Files.writeString(outDir.resolve(safe(controlId) + ".hl7"), sent, StandardCharsets.UTF_8);
        Message ack = initiator.sendAndReceive(msg); // throws if the reply does not parse in HAPI
        Terser t = new Terser(ack);
        System.out.println(json("file", file, "control_id", controlId, "sent", outDir.resolve(safe(controlId) + ".hl7").toString(), "ack_code", t.get("/MSA-1"),
            "msa_2", t.get("/MSA-2"), "ack_type", t.get("/MSH-9-1")));
      }
      conn.close();
    }
  }

  static void receive(int port, Path outDir) throws Exception {
    Files.createDirectories(outDir);
    HapiContext ctx = context();
    HL7Service server = ctx.newServer(port, false);
    server.registerApplication(new ReceivingApplication<Message>() {
      @Override
      public Message processMessage(Message msg, Map<String, Object> meta) {
        try {
          String raw = (String) meta.get("raw-message");
          String controlId = new Terser(msg).get("/MSH-10");
          // Write to a temporary name and rename, so a reader never sees half a file.
          Path tmp = outDir.resolve("." + safe(controlId) + ".tmp");
          Files.writeString(tmp, raw, StandardCharsets.UTF_8);
          Files.move(tmp, outDir.resolve(safe(controlId) + ".hl7"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
          return msg.generateACK();
        } catch (Exception e) {
          throw new RuntimeException(e);
        }
      }

      @Override
      public boolean canProcess(Message msg) {
        return true;
      }
    });
    server.startAndWait();
    System.out.println("listening " + port);
    System.out.flush();
    Thread.currentThread().join();
  }

  static void dump(String[] files) throws Exception {
    try (HapiContext ctx = context()) {
      PipeParser parser = ctx.getPipeParser();
      for (String file : files) {
        Message msg;
        try {
          msg = parser.parse(read(file));
        } catch (Exception e) {
          System.out.println(file + "\tSKIP\t" + e.getMessage().replace('\t', ' ').replace('\n', ' ').replace('\r', ' '));
          continue;
        }
        walk(file, msg, new HashMap<>());
      }
    }
  }

  private static void walk(String file, Group g, Map<String, Integer> occurrences) throws Exception {
    for (String name : g.getNames()) {
      for (Structure s : g.getAll(name)) {
        if (s instanceof Group child) {
          walk(file, child, occurrences);
        } else if (s instanceof Segment seg && !seg.isEmpty()) {
          // HAPI names a segment it cannot place in the structure with a
          // suffix (CON_); the segment ID is its first three characters.
          String id = seg.getName().length() > 3 ? seg.getName().substring(0, 3) : seg.getName();
          int occ = occurrences.merge(id, 1, Integer::sum);
          dumpSegment(file, id, seg, occ);
        }
      }
    }
  }

  private static void dumpSegment(String file, String name, Segment seg, int occ) throws Exception {
    boolean header = name.equals("MSH") || name.equals("FHS") || name.equals("BHS");
    for (int f = 1; f <= seg.numFields(); f++) {
      if (header && f <= 2) {
        continue;
      }
      Type[] reps = seg.getField(f);
      for (int r = 0; r < reps.length; r++) {
        dumpType(file, name, occ, f, r + 1, 0, 0, reps[r]);
      }
    }
  }

  private static void dumpType(String file, String seg, int occ, int f, int r, int c, int s, Type t) throws Exception {
    if (t instanceof Varies v) {
      t = v.getData();
    }
    if (t instanceof Composite comp && s != 0) {
      // ER7 has three levels; a composite nested deeper (the units CE of a
      // CQ subcomponent) holds the wire value in its first part.
      Type[] parts = comp.getComponents();
      if (parts.length > 0) {
        dumpType(file, seg, occ, f, r, c, s, parts[0]);
      }
      return;
    }
    if (t instanceof Composite comp) {
      Type[] parts = comp.getComponents();
      for (int i = 0; i < parts.length; i++) {
        if (c == 0) {
          dumpType(file, seg, occ, f, r, i + 1, 0, parts[i]);
        } else {
          dumpType(file, seg, occ, f, r, c, i + 1, parts[i]);
        }
      }
    } else if (t instanceof Primitive p) {
      emit(file, seg, occ, f, r, c == 0 ? 1 : c, s == 0 ? 1 : s, p.getValue());
    }
    // Extra components (or subcomponents) a sender added beyond HAPI's model
    // of the type: they follow the ones the model has.
    var extra = t.getExtraComponents();
    int modeled = t instanceof Composite comp2 ? comp2.getComponents().length : 1;
    for (int i = 0; i < extra.numComponents(); i++) {
      if (c == 0) {
        dumpType(file, seg, occ, f, r, modeled + i + 1, 0, extra.getComponent(i).getData());
      } else if (s == 0) {
        dumpType(file, seg, occ, f, r, c, modeled + i + 1, extra.getComponent(i).getData());
      }
    }
  }

  private static void emit(String file, String seg, int occ, int f, int r, int c, int s, String value) {
    if (value == null || value.isEmpty()) {
      return;
    }
    String v = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n");
    System.out.println(file + "\t" + seg + "\t" + occ + "\t" + f + "\t" + r + "\t" + c + "\t" + s + "\t" + v);
  }

  private static String safe(String s) {
    return s == null ? "null" : s.replaceAll("[^A-Za-z0-9._-]", "_");
  }

  private static String json(String... kv) {
    StringBuilder b = new StringBuilder("{");
    for (int i = 0; i + 1 < kv.length; i += 2) {
      if (i > 0) {
        b.append(',');
      }
      b.append('"').append(kv[i]).append("\":\"").append(esc(kv[i + 1])).append('"');
    }
    return b.append('}').toString();
  }

  private static String esc(String s) {
    if (s == null) {
      return "";
    }
    StringBuilder b = new StringBuilder();
    for (char ch : s.toCharArray()) {
      switch (ch) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        default -> {
          if (ch < 0x20) {
            b.append(String.format("\\u%04x", (int) ch));
          } else {
            b.append(ch);
          }
        }
      }
    }
    return b.toString();
  }
}
