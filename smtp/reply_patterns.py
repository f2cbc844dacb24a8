"""Data tables for reply trimming, kept in one place so new clients and languages are one edit.

Everything here is plain data (strings and tuples); `smtp.trim` compiles it into patterns.
"""

from __future__ import annotations

# Verbs that close an attribution line ("On <date>, <name> wrote:"). They may be followed by a
# name, a date or an address before the final colon ("Am <date> schrieb <name> <addr>:").
ATTRIBUTION_VERBS: tuple[str, ...] = (
    # English
    "wrote", "writes", "sent",
    # German
    "schrieb", "geschrieben", "schreibt",
    # Dutch
    "schreef", "het volgende geschreven",
    # French
    "a écrit", "a ecrit", "écrit",
    # Spanish / Catalan / Galician
    "escribió", "escribio", "escribe", "ha escrit", "va escriure", "escribiu",
    # Portuguese
    "escreveu",
    # Italian
    "ha scritto", "scrisse",
    # Scandinavian
    "skrev", "skrifaði",
    # Finnish / Estonian
    "kirjoitti", "kirjutas",
    # Polish / Czech / Slovak / Slovenian / Croatian / Serbian
    "napisał", "napisała", "pisze", "napisał(a)", "napsal", "napsala", "napsal(a)", "napísal",
    "napísala", "je napisal", "je napisala", "napisao", "napisala", "написао",
    # Russian / Ukrainian / Bulgarian
    "написал", "написала", "написал(а)", "пишет", "написав", "пише", "писал",
    # Greek / Turkish / Hungarian / Romanian
    "έγραψε", "yazdı", "írta", "a scris", "scrise",
    # Lithuanian / Latvian / Vietnamese / Indonesian
    "rašė", "rakstīja", "đã viết", "menulis",
    # Hebrew / Arabic / Persian
    "כתב", "כתבה", "كتب", "نوشت",
    # CJK
    "작성", "写道", "寫道", "のメッセージ", "は書きました", "さんは書きました",
)

# Words that open a localised attribution ("Le 4 janv. 2016, X a écrit :"); with a date or an
# address they let a line be considered an attribution even without a digit.
ATTRIBUTION_STARTS: tuple[str, ...] = (
    "On", "Le", "Am", "El", "Em", "Op", "Il", "Den", "På", "W dniu", "Dnia", "Dne", "V",
    "Vào", "Στις", "В", "У", "Pada", "Na", "Em", "Kun", "Ar", "在", "于",
)

# Outlook-style header blocks: the first field of a block (who sent it) ...
HEADER_FROM_FIELDS: tuple[str, ...] = (
    "From", "Von", "De", "Da", "Van", "Od", "Från", "Fra", "Frá", "Lähettäjä", "Saatja",
    "От", "Від", "Kimden", "Feladó", "Expeditor", "Nadawca", "Odesílatel", "Αποστολέας",
    "Từ", "Dari", "발신", "보낸 사람", "差出人", "发件人", "寄件者", "Mittente", "Remitente",
    "Absender", "Afzender", "Expéditeur",
)

# ... and the other fields that appear with it, in many languages.
HEADER_OTHER_FIELDS: tuple[str, ...] = (
    # English
    "Sent", "Date", "To", "Cc", "Bcc", "Subject", "Reply-To",
    # German
    "Gesendet", "Datum", "An", "Betreff", "Kopie",
    # French
    "Envoyé", "Envoyé le", "Date", "À", "A", "Pour", "Objet", "Sujet", "Cc",
    # Italian
    "Inviato", "Data", "A", "Oggetto", "Risposta",
    # Spanish / Portuguese
    "Enviado", "Enviado el", "Fecha", "Para", "Asunto", "Assunto", "Enviada em",
    # Dutch
    "Verzonden", "Aan", "Onderwerp", "Datum",
    # Scandinavian
    "Skickat", "Till", "Ämne", "Sendt", "Til", "Emne", "Dato", "Kopi",
    # Finnish
    "Lähetetty", "Vastaanottaja", "Aihe", "Päivämäärä",
    # Polish / Czech
    "Wysłano", "Do", "Temat", "Data", "Odesláno", "Komu", "Předmět",
    # Russian / Ukrainian
    "Отправлено", "Дата", "Кому", "Тема", "Копия", "Надіслано",
    # Turkish / Hungarian / Romanian / Greek
    "Gönderildi", "Kime", "Konu", "Tarih", "Elküldve", "Címzett", "Tárgy", "Dátum",
    "Trimis", "Către", "Subiect", "Στάλθηκε", "Προς", "Θέμα",
    # Vietnamese / Indonesian
    "Đã gửi", "Tới", "Chủ đề", "Dikirim", "Kepada", "Perihal", "Subjek",
    # CJK
    "보낸 날짜", "받는 사람", "제목", "送信日時", "宛先", "件名", "日付", "发送时间", "收件人",
    "主题", "日期", "傳送時間", "收件者", "主旨",
)

# "-----Original Message-----" and its siblings; matched inside a run of dashes or underscores.
ORIGINAL_MESSAGE_PHRASES: tuple[str, ...] = (
    "Original Message", "Reply Message", "Original", "Forwarded message", "Forwarded by",
    "Ursprüngliche Nachricht", "Antwort Nachricht", "Weitergeleitete Nachricht",
    "Original-Nachricht", "Message d'origine", "Message original", "Message transféré",
    "Mensaje original", "Mensaje reenviado", "Mensagem original", "Mensagem encaminhada",
    "Messaggio originale", "Messaggio inoltrato", "Oorspronkelijk bericht",
    "Oorspronkelijk Bericht", "Doorgestuurd bericht", "Originalmeddelande",
    "Vidarebefordrat meddelande", "Oprindelig meddelelse", "Videresendt meddelelse",
    "Opprinnelig melding", "Videresendt melding", "Alkuperäinen viesti", "Välitetty viesti",
    "Wiadomość oryginalna", "Oryginalna wiadomość", "Przekazana wiadomość", "Původní zpráva",
    "Přeposlaná zpráva", "Исходное сообщение", "Пересылаемое сообщение",
    "Пересланное сообщение", "Eredeti üzenet", "Mesaj original", "Orijinal Mesaj",
    "Αρχικό μήνυμα", "原始邮件", "原始郵件", "転送されたメッセージ", "元のメッセージ",
    "원본 메시지",
)

# Lines that introduce a forwarded message without dashes.
FORWARD_INTROS: tuple[str, ...] = (
    "Begin forwarded message", "Forwarded message", "Anfang der weitergeleiteten Nachricht",
    "Début du message réexpédié", "Début du message transféré", "Inicio del mensaje reenviado",
    "Comienzo del mensaje reenviado", "Início da mensagem reencaminhada",
    "Início da mensagem encaminhada", "Inizio messaggio inoltrato", "Begin doorgestuurd bericht",
    "Vidarebefordrat brev", "Videresendt brev", "Начало пересылаемого сообщения",
    "Początek przekazywanej wiadomości", "転送されたメッセージ", "전달된 메시지",
)

# App and mobile footers, as whole lines. "{device}" stands for a short device or app name.
MOBILE_FOOTERS: tuple[str, ...] = (
    r"Sent from my {device}",
    r"Sent (?:wirelessly )?from my {device}",
    r"Sent from {device} for (?:iOS|Android|iPhone|iPad|Windows|Mac)",
    r"Sent from (?:Outlook|Mail|Yahoo Mail|Mailbox|AOL Mobile Mail|Samsung Mobile|Gmail"
    r"|ProtonMail|Proton Mail|TypeApp|Acompli|Spark|Newton Mail|BlueMail|myMail|Edison Mail"
    r"|Superhuman|Front|Missive|Airmail|Canary Mail|Nine|Hey)(?:\s.{0,40})?",
    r"Get Outlook for (?:iOS|Android)",
    r"Sent via {device}",
    r"Sent with {device}",
    r"Envoyé (?:de|depuis) mon {device}",
    r"Envoyé (?:de|depuis) {device} pour (?:iOS|Android)",
    r"Envoyé sans fil par mon {device}",
    r"Envoyé à partir de {device}",
    r"Von meinem {device} gesendet",
    r"Gesendet von meinem {device}",
    r"Gesendet (?:von|mit) {device}",
    r"Diese Nachricht wurde von meinem {device} gesendet\.?",
    r"Enviado desde mi {device}",
    r"Enviado desde {device} para (?:iOS|Android)",
    r"Enviado do meu {device}",
    r"Enviado de meu {device}",
    r"Inviato da(?:l mio)? {device}",
    r"Verzonden (?:vanaf|met) (?:mijn )?{device}",
    r"Verstuurd vanaf mijn {device}",
    r"Skickat från min {device}",
    r"Sendt fra min {device}",
    r"Sendt fra {device}",
    r"Lähetetty {device}:?sta",
    r"Wysłane z (?:mojego )?{device}",
    r"Odesláno z (?:mého )?{device}",
    r"Отправлено с (?:моего )?{device}",
    r"Надіслано з {device}",
    r"iPhone'umdan gönderildi",
    r"{device}から送信",
    r"发自我的{device}",
    r"從我的 ?{device}傳送",
    r"나의 {device}에서 보냄",
)

# Opening words of a legal notice paragraph; it and everything after it are dropped.
LEGAL_NOTICE_STARTS: tuple[str, ...] = (
    "This email and any attachments", "This e-mail and any attachments",
    "This email message and any attachments", "This message and any attachments",
    "This e-mail message", "This email is confidential", "This e-mail is confidential",
    "This message is confidential", "The information contained in this",
    "The information in this e-mail", "The information in this email",
    "CONFIDENTIALITY NOTICE", "CONFIDENTIALITY NOTE", "Confidentiality Notice",
    "DISCLAIMER", "Disclaimer:", "IMPORTANT NOTICE", "PRIVILEGED AND CONFIDENTIAL",
    "Diese E-Mail enthält vertrauliche", "Diese Nachricht enthält vertrauliche",
    "Ce message et toutes les pièces jointes", "Ce courriel et",
    "Questo messaggio e i suoi allegati", "Este mensaje y sus anexos",
    "Este correo electrónico y", "Dit bericht is uitsluitend bestemd",
)

# A mailing-list footer after a rule of underscores ("riak-users mailing list").
LIST_FOOTER_WORDS: tuple[str, ...] = ("mailing list", "unsubscribe", "listinfo")
