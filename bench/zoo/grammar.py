"""A closed English grammar and its rule-based Spanish translation, for the synthetic corpora.

Every generator returns a `Sentence`: the English words (what eSpeak speaks and ASR must
write), their Spanish translation (the ST target, made by rules over the same slots, so it
is always right for this grammar) and, for commands, a SLURP-style intent.

Spanish is written without accents (ASCII): the translation is a target text for a model to
learn, not a language lesson, and a small character set keeps the tiny ST model small.
The word lists are frozen: changing them changes every figure measured on the corpora.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sentence:
    kind: str  # numbers, dates, times, commands, sentences
    english: str  # lower case words, no punctuation
    spanish: str
    intent: str | None = None  # SLURP style scenario_action, for commands


# --- numbers -----------------------------------------------------------------------------
_EN_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
             "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
             "eighteen", "nineteen"]
_EN_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_ES_UNITS = ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez",
             "once", "doce", "trece", "catorce", "quince", "dieciseis", "diecisiete", "dieciocho",
             "diecinueve", "veinte", "veintiuno", "veintidos", "veintitres", "veinticuatro",
             "veinticinco", "veintiseis", "veintisiete", "veintiocho", "veintinueve"]
_ES_TENS = ["", "", "", "treinta", "cuarenta", "cincuenta", "sesenta", "setenta", "ochenta", "noventa"]
_ES_HUNDREDS = ["", "ciento", "doscientos", "trescientos", "cuatrocientos", "quinientos",
                "seiscientos", "setecientos", "ochocientos", "novecientos"]


def english_number(n: int) -> str:
    """0 <= n < 10000 in words, American style ("four thousand two hundred seventeen")."""
    if not 0 <= n < 10000:
        raise ValueError(f"english_number: {n} out of range")
    if n < 20:
        return _EN_UNITS[n]
    if n < 100:
        return _EN_TENS[n // 10] + ("" if n % 10 == 0 else " " + _EN_UNITS[n % 10])
    if n < 1000:
        rest = n % 100
        return f"{_EN_UNITS[n // 100]} hundred" + ("" if rest == 0 else " " + english_number(rest))
    rest = n % 1000
    return f"{_EN_UNITS[n // 1000]} thousand" + ("" if rest == 0 else " " + english_number(rest))


def spanish_number(n: int) -> str:
    """0 <= n < 10000 in Spanish words, without accents."""
    if not 0 <= n < 10000:
        raise ValueError(f"spanish_number: {n} out of range")
    if n < 30:
        return _ES_UNITS[n]
    if n < 100:
        return _ES_TENS[n // 10] + ("" if n % 10 == 0 else " y " + _ES_UNITS[n % 10])
    if n < 1000:
        if n == 100:
            return "cien"
        rest = n % 100
        return _ES_HUNDREDS[n // 100] + ("" if rest == 0 else " " + spanish_number(rest))
    rest = n % 1000
    head = "mil" if n // 1000 == 1 else f"{_ES_UNITS[n // 1000]} mil"
    return head + ("" if rest == 0 else " " + spanish_number(rest))


def english_year(y: int) -> str:
    """Years as spoken: 1998 -> nineteen ninety eight, 2005 -> two thousand five, 2021 -> twenty twenty one."""
    hi, lo = divmod(y, 100)
    if 2000 <= y < 2010:
        return english_number(y)
    if lo == 0:
        return f"{english_number(hi)} hundred"
    tail = f"oh {_EN_UNITS[lo]}" if lo < 10 else english_number(lo)
    return f"{english_number(hi)} {tail}"


_NUMBER_CARRIERS = [  # (english, spanish) with {n}
    ("the number is {n}", "el numero es {n}"),
    ("the total is {n} dollars", "el total es {n} dolares"),
    ("i need {n} tickets", "necesito {n} boletos"),
    ("room number {n}", "habitacion numero {n}"),
    ("we sold {n} books", "vendimos {n} libros"),
    ("the train leaves from platform {n}", "el tren sale del anden {n}"),
    ("add {n} points", "suma {n} puntos"),
    ("the bridge is {n} meters long", "el puente mide {n} metros"),
]

_DIGIT_CARRIERS = [
    ("call me at {d}", "llamame al {d}"),
    ("my code is {d}", "mi codigo es {d}"),
    ("the order number is {d}", "el numero de pedido es {d}"),
]


def _numbers(rng) -> Sentence:
    if rng.random() < 0.3:
        en, es = _DIGIT_CARRIERS[rng.integers(len(_DIGIT_CARRIERS))]
        digits = [int(x) for x in rng.integers(0, 10, size=int(rng.integers(3, 7)))]
        return Sentence("numbers", en.format(d=" ".join(_EN_UNITS[x] for x in digits)),
                        es.format(d=" ".join(_ES_UNITS[x] for x in digits)))
    en, es = _NUMBER_CARRIERS[rng.integers(len(_NUMBER_CARRIERS))]
    n = int(rng.choice([rng.integers(2, 100), rng.integers(100, 1000), rng.integers(1000, 10000)]))
    return Sentence("numbers", en.format(n=english_number(n)), es.format(n=spanish_number(n)))


# --- dates and times ---------------------------------------------------------------------
_MONTHS = [("january", "enero"), ("february", "febrero"), ("march", "marzo"), ("april", "abril"),
           ("may", "mayo"), ("june", "junio"), ("july", "julio"), ("august", "agosto"),
           ("september", "septiembre"), ("october", "octubre"), ("november", "noviembre"),
           ("december", "diciembre")]
_ORDINALS = ["", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
             "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
             "seventeenth", "eighteenth", "nineteenth", "twentieth"]


def english_ordinal(n: int) -> str:
    if n <= 20:
        return _ORDINALS[n]
    if n % 10 == 0:
        return "thirtieth"  # only 30 occurs (days of a month)
    return f"{_EN_TENS[n // 10]} {_ORDINALS[n % 10]}"


_DATE_CARRIERS = [
    ("the meeting is on {d}", "la reunion es el {d}"),
    ("she was born on {d}", "ella nacio el {d}"),
    ("the shop opens on {d}", "la tienda abre el {d}"),
    ("we arrive on {d}", "llegamos el {d}"),
    ("the payment is due on {d}", "el pago vence el {d}"),
]


def _date(rng) -> tuple[str, str]:
    month_en, month_es = _MONTHS[rng.integers(12)]
    day = int(rng.integers(1, 31))
    en, es = f"{month_en} {english_ordinal(day)}", f"{spanish_number(day)} de {month_es}"
    if rng.random() < 0.5:
        year = int(rng.integers(1950, 2031))
        en, es = f"{en} {english_year(year)}", f"{es} de {spanish_number(year)}"
    return en, es


def _dates(rng) -> Sentence:
    en, es = _DATE_CARRIERS[rng.integers(len(_DATE_CARRIERS))]
    d_en, d_es = _date(rng)
    return Sentence("dates", en.format(d=d_en), es.format(d=d_es))


_PARTS_OF_DAY = [("in the morning", "de la manana"), ("in the afternoon", "de la tarde"),
                 ("in the evening", "de la noche")]
_MINUTES = [0, 5, 10, 15, 20, 25, 30, 40, 45, 50, 55]


def _time(rng) -> tuple[str, str]:
    hour = int(rng.integers(1, 13))
    minute = int(rng.choice(_MINUTES))
    part_en, part_es = _PARTS_OF_DAY[rng.integers(len(_PARTS_OF_DAY))]
    en = english_number(hour) + ("" if minute == 0 else " " + english_number(minute))
    article = "la" if hour == 1 else "las"
    es = f"{article} {spanish_number(hour)}" + ("" if minute == 0 else " y " + spanish_number(minute))
    return f"{en} {part_en}", f"{es} {part_es}"


_TIME_CARRIERS = [
    ("the bus comes at {t}", "el autobus llega a {t}"),
    ("dinner is at {t}", "la cena es a {t}"),
    ("the store closes at {t}", "la tienda cierra a {t}"),
    ("i woke up at {t}", "me desperte a {t}"),
    ("the film starts at {t}", "la pelicula empieza a {t}"),
]


def _times(rng) -> Sentence:
    en, es = _TIME_CARRIERS[rng.integers(len(_TIME_CARRIERS))]
    t_en, t_es = _time(rng)
    return Sentence("times", en.format(t=t_en), es.format(t=t_es))


# --- commands with intents ---------------------------------------------------------------
_DEVICES = [("lights", "las luces"), ("lamp", "la lampara"), ("fan", "el ventilador"),
            ("heater", "la calefaccion"), ("television", "la television"), ("radio", "la radio"),
            ("oven", "el horno"), ("kettle", "el hervidor"), ("coffee machine", "la cafetera"),
            ("dishwasher", "el lavavajillas"), ("printer", "la impresora"), ("speaker", "el altavoz")]
_ROOMS = [("kitchen", "la cocina"), ("bedroom", "el dormitorio"), ("living room", "la sala"),
          ("bathroom", "el bano"), ("garage", "el garaje"), ("office", "la oficina"),
          ("hallway", "el pasillo"), ("basement", "el sotano"), ("dining room", "el comedor"),
          ("attic", "el atico")]
_GENRES = [("jazz", "jazz"), ("rock", "rock"), ("classical", "clasica"), ("country", "country"),
           ("pop", "pop"), ("blues", "blues"), ("reggae", "reggae"), ("folk", "folk"),
           ("dance", "de baile"), ("piano", "de piano")]
_CITIES = [("london", "londres"), ("paris", "paris"), ("berlin", "berlin"), ("madrid", "madrid"),
           ("tokyo", "tokio"), ("boston", "boston"), ("chicago", "chicago"), ("rome", "roma"),
           ("dublin", "dublin"), ("toronto", "toronto"), ("sydney", "sidney"), ("lisbon", "lisboa")]
_NAMES = ["anna", "peter", "maria", "james", "linda", "robert", "susan", "michael", "karen", "david",
          "laura", "thomas", "emma", "daniel", "sarah", "paul", "julia", "mark", "helen", "george",
          "alice", "frank", "grace", "henry", "irene", "jack", "kate", "leo", "nina", "oscar",
          "rosa", "simon", "tina", "victor", "wendy", "adam", "clara", "edgar", "fiona", "hugo"]
_FOODS = [("a pizza", "una pizza"), ("some sushi", "sushi"), ("a burger", "una hamburguesa"),
          ("noodles", "fideos"), ("a salad", "una ensalada"), ("curry", "curry"),
          ("tacos", "tacos"), ("fried rice", "arroz frito")]
_CHORES = [("buy milk", "comprar leche"), ("water the plants", "regar las plantas"),
           ("pay the rent", "pagar el alquiler"), ("walk the dog", "pasear al perro"),
           ("call the bank", "llamar al banco"), ("take my pills", "tomar mis pastillas"),
           ("feed the cat", "dar de comer al gato"), ("clean the car", "limpiar el coche")]
_DAYS = [("monday", "el lunes"), ("tuesday", "el martes"), ("wednesday", "el miercoles"),
         ("thursday", "el jueves"), ("friday", "el viernes"), ("saturday", "el sabado"),
         ("sunday", "el domingo"), ("tomorrow", "manana"), ("today", "hoy")]
_LISTS = [("shopping", "de compras"), ("todo", "de tareas"), ("packing", "de equipaje")]
_ITEMS = [("eggs", "huevos"), ("bread", "pan"), ("apples", "manzanas"), ("soap", "jabon"),
          ("batteries", "pilas"), ("coffee", "cafe"), ("rice", "arroz"), ("cheese", "queso")]


def _pick(rng, items):
    return items[int(rng.integers(len(items)))]


def _commands_of(rng, intent: str) -> tuple[str, str]:
    """One (english, spanish) command of the given intent."""
    if intent == "iot_hue_lighton":
        r_en, r_es = _pick(rng, _ROOMS)
        return _pick(rng, [(f"turn on the lights in the {r_en}", f"enciende las luces de {r_es}"),
                           (f"switch the {r_en} lights on", f"enciende las luces de {r_es}"),
                           (f"lights on in the {r_en} please", f"luces encendidas en {r_es} por favor")])
    if intent == "iot_hue_lightoff":
        r_en, r_es = _pick(rng, _ROOMS)
        return _pick(rng, [(f"turn off the lights in the {r_en}", f"apaga las luces de {r_es}"),
                           (f"switch the {r_en} lights off", f"apaga las luces de {r_es}"),
                           (f"make the {r_en} dark", f"deja {r_es} a oscuras")])
    if intent == "iot_wemo_on":
        d_en, d_es = _pick(rng, _DEVICES[1:])
        r_en, r_es = _pick(rng, _ROOMS)
        return _pick(rng, [(f"turn on the {d_en} in the {r_en}", f"enciende {d_es} de {r_es}"),
                           (f"start the {d_en}", f"pon en marcha {d_es}")])
    if intent == "iot_wemo_off":
        d_en, d_es = _pick(rng, _DEVICES[1:])
        r_en, r_es = _pick(rng, _ROOMS)
        return _pick(rng, [(f"turn off the {d_en} in the {r_en}", f"apaga {d_es} de {r_es}"),
                           (f"shut down the {d_en}", f"apaga {d_es}")])
    if intent == "alarm_set":
        t_en, t_es = _time(rng)
        day_en, day_es = _pick(rng, _DAYS)
        return _pick(rng, [(f"set an alarm for {t_en}", f"pon una alarma para {t_es}"),
                           (f"wake me up at {t_en} {day_en}", f"despiertame a {t_es} {day_es}")])
    if intent == "alarm_query":
        day_en, day_es = _pick(rng, _DAYS)
        return _pick(rng, [(f"what alarms do i have {day_en}", f"que alarmas tengo {day_es}"),
                           (f"is there an alarm set for {day_en}", f"hay una alarma para {day_es}")])
    if intent == "play_music":
        g_en, g_es = _pick(rng, _GENRES)
        return _pick(rng, [(f"play some {g_en} music", f"pon musica {g_es}"),
                           (f"i want to hear {g_en}", f"quiero escuchar musica {g_es}")])
    if intent == "audio_volume_up":
        return _pick(rng, [("turn the volume up", "sube el volumen"), ("make it louder", "mas alto"),
                           (f"increase the volume to {english_number(int(rng.integers(2, 11)))}",
                            "sube el volumen")])
    if intent == "audio_volume_down":
        return _pick(rng, [("turn the volume down", "baja el volumen"), ("make it quieter", "mas bajo"),
                           (f"lower the volume to {english_number(int(rng.integers(1, 10)))}",
                            "baja el volumen")])
    if intent == "weather_query":
        c_en, c_es = _pick(rng, _CITIES)
        day_en, day_es = _pick(rng, _DAYS)
        return _pick(rng, [(f"what is the weather in {c_en} {day_en}", f"que tiempo hace en {c_es} {day_es}"),
                           (f"will it rain in {c_en} {day_en}", f"llovera en {c_es} {day_es}")])
    if intent == "calendar_set":
        name = _pick(rng, _NAMES)
        day_en, day_es = _pick(rng, _DAYS)
        t_en, t_es = _time(rng)
        return (f"schedule a meeting with {name} {day_en} at {t_en}",
                f"programa una reunion con {name} {day_es} a {t_es}")
    if intent == "calendar_remove":
        day_en, day_es = _pick(rng, _DAYS)
        return (f"cancel my appointments for {day_en}", f"cancela mis citas de {day_es}")
    if intent == "email_sendemail":
        name = _pick(rng, _NAMES)
        return _pick(rng, [(f"send an email to {name}", f"envia un correo a {name}"),
                           (f"write a message to {name}", f"escribe un mensaje a {name}")])
    if intent == "email_query":
        name = _pick(rng, _NAMES)
        return _pick(rng, [(f"do i have new emails from {name}", f"tengo correos nuevos de {name}"),
                           ("read my new emails", "lee mis correos nuevos")])
    if intent == "takeaway_order":
        f_en, f_es = _pick(rng, _FOODS)
        return (f"order {f_en} for dinner", f"pide {f_es} para la cena")
    if intent == "transport_ticket":
        c_en, c_es = _pick(rng, _CITIES)
        day_en, day_es = _pick(rng, _DAYS)
        return (f"book a train ticket to {c_en} for {day_en}", f"reserva un billete de tren a {c_es} para {day_es}")
    if intent == "reminder_set":
        c_en, c_es = _pick(rng, _CHORES)
        t_en, t_es = _time(rng)
        return (f"remind me to {c_en} at {t_en}", f"recuerdame {c_es} a {t_es}")
    if intent == "lists_createoradd":
        i_en, i_es = _pick(rng, _ITEMS)
        l_en, l_es = _pick(rng, _LISTS)
        return (f"add {i_en} to my {l_en} list", f"anade {i_es} a mi lista {l_es}")
    if intent == "datetime_query":
        c_en, c_es = _pick(rng, _CITIES)
        return _pick(rng, [("what time is it", "que hora es"), (f"what time is it in {c_en}", f"que hora es en {c_es}"),
                           ("what is the date today", "que fecha es hoy")])
    if intent == "general_joke":
        return _pick(rng, [("tell me a joke", "cuentame un chiste"), ("say something funny", "di algo gracioso")])
    raise KeyError(intent)


INTENTS = ("iot_hue_lighton", "iot_hue_lightoff", "iot_wemo_on", "iot_wemo_off", "alarm_set",
           "alarm_query", "play_music", "audio_volume_up", "audio_volume_down", "weather_query",
           "calendar_set", "calendar_remove", "email_sendemail", "email_query", "takeaway_order",
           "transport_ticket", "reminder_set", "lists_createoradd", "datetime_query", "general_joke")


def _commands(rng) -> Sentence:
    intent = INTENTS[int(rng.integers(len(INTENTS)))]
    en, es = _commands_of(rng, intent)
    return Sentence("commands", en, es, intent)


# --- plain sentences ---------------------------------------------------------------------
# Subjects are singular (the Spanish verb is always 3rd person singular preterite).
_SUBJECTS = [("the old man", "el anciano"), ("a young girl", "una nina"), ("the teacher", "la maestra"),
             ("my brother", "mi hermano"), ("the farmer", "el granjero"), ("our neighbor", "nuestro vecino"),
             ("the doctor", "el medico"), ("a small dog", "un perro pequeno"), ("the captain", "el capitan"),
             ("her mother", "su madre"), ("the baker", "el panadero"), ("my aunt", "mi tia"),
             ("the pilot", "el piloto"), ("a tired student", "un estudiante cansado"),
             ("the police officer", "el policia"), ("his father", "su padre"), ("the singer", "la cantante"),
             ("a stranger", "un desconocido"), ("the nurse", "la enfermera"), ("my cousin", "mi primo"),
             ("the king", "el rey"), ("the queen", "la reina"), ("a fisherman", "un pescador"),
             ("the mayor", "el alcalde")]
_VERBS = [("found", "encontro"), ("carried", "llevo"), ("painted", "pinto"), ("watched", "miro"),
          ("opened", "abrio"), ("cleaned", "limpio"), ("brought", "trajo"), ("moved", "movio"),
          ("wanted", "quiso"), ("saw", "vio"), ("sold", "vendio"), ("bought", "compro"),
          ("built", "construyo"), ("closed", "cerro"), ("lost", "perdio"), ("repaired", "reparo"),
          ("visited", "visito"), ("drew", "dibujo"), ("lifted", "levanto"), ("hid", "escondio"),
          ("washed", "lavo"), ("described", "describio"), ("liked", "quiso"), ("needed", "necesito"),
          ("pushed", "empujo"), ("pulled", "tiro de"), ("touched", "toco"), ("checked", "reviso"),
          ("chose", "eligio"), ("forgot", "olvido"), ("kept", "guardo"), ("left", "dejo"),
          ("shared", "compartio"), ("showed", "mostro"), ("sent", "envio"), ("received", "recibio"),
          ("measured", "midio"), ("counted", "conto"), ("borrowed", "pidio prestado"),
          ("returned", "devolvio"), ("covered", "cubrio"), ("filled", "lleno"), ("dropped", "dejo caer"),
          ("followed", "siguio"), ("noticed", "noto"), ("protected", "protegio"), ("ignored", "ignoro"),
          ("photographed", "fotografio"), ("admired", "admiro"), ("studied", "estudio")]
# (english, spanish, gender) ; gender decides the article and the adjective ending
_NOUNS = [("house", "casa", "f"), ("garden", "jardin", "m"), ("letter", "carta", "f"),
          ("river", "rio", "m"), ("table", "mesa", "f"), ("window", "ventana", "f"),
          ("basket", "cesta", "f"), ("market", "mercado", "m"), ("bridge", "puente", "m"),
          ("boat", "barco", "m"), ("chair", "silla", "f"), ("door", "puerta", "f"),
          ("book", "libro", "m"), ("car", "coche", "m"), ("bicycle", "bicicleta", "f"),
          ("box", "caja", "f"), ("bottle", "botella", "f"), ("cup", "taza", "f"),
          ("plate", "plato", "m"), ("key", "llave", "f"), ("coat", "abrigo", "m"),
          ("hat", "sombrero", "m"), ("shoe", "zapato", "m"), ("bag", "bolsa", "f"),
          ("clock", "reloj", "m"), ("lamp", "lampara", "f"), ("picture", "cuadro", "m"),
          ("mirror", "espejo", "m"), ("wall", "pared", "f"), ("fence", "valla", "f"),
          ("road", "camino", "m"), ("tree", "arbol", "m"), ("flower", "flor", "f"),
          ("stone", "piedra", "f"), ("horse", "caballo", "m"), ("cat", "gato", "m"),
          ("bird", "pajaro", "m"), ("cow", "vaca", "f"), ("sheep", "oveja", "f"),
          ("map", "mapa", "m"), ("ticket", "billete", "m"), ("coin", "moneda", "f"),
          ("ring", "anillo", "m"), ("rope", "cuerda", "f"), ("ladder", "escalera", "f"),
          ("blanket", "manta", "f"), ("pillow", "almohada", "f"), ("candle", "vela", "f"),
          ("knife", "cuchillo", "m"), ("spoon", "cuchara", "f"), ("bucket", "cubo", "m"),
          ("hammer", "martillo", "m"), ("wheel", "rueda", "f"), ("engine", "motor", "m"),
          ("roof", "tejado", "m"), ("tower", "torre", "f"), ("church", "iglesia", "f"),
          ("school", "escuela", "f"), ("hospital", "hospital", "m"), ("library", "biblioteca", "f"),
          ("kitchen", "cocina", "f"), ("island", "isla", "f"), ("mountain", "montana", "f"),
          ("forest", "bosque", "m"), ("lake", "lago", "m"), ("field", "campo", "m"),
          ("village", "pueblo", "m"), ("castle", "castillo", "m"), ("ship", "barco", "m"),
          ("train", "tren", "m"), ("guitar", "guitarra", "f"), ("piano", "piano", "m"),
          ("drum", "tambor", "m"), ("photo", "foto", "f"), ("newspaper", "periodico", "m"),
          ("envelope", "sobre", "m"), ("pencil", "lapiz", "m"), ("notebook", "cuaderno", "m"),
          ("computer", "ordenador", "m"), ("phone", "telefono", "m"), ("camera", "camara", "f"),
          ("jacket", "chaqueta", "f"), ("shirt", "camisa", "f"), ("dress", "vestido", "m"),
          ("umbrella", "paraguas", "m"), ("suitcase", "maleta", "f"), ("wallet", "cartera", "f"),
          ("cake", "pastel", "m"), ("apple", "manzana", "f"), ("orange", "naranja", "f"),
          ("bread", "pan", "m"), ("cheese", "queso", "m"), ("soup", "sopa", "f"),
          ("tent", "tienda", "f"), ("gate", "puerta", "f"), ("statue", "estatua", "f"),
          ("fountain", "fuente", "f"), ("carpet", "alfombra", "f"), ("curtain", "cortina", "f"),
          ("bench", "banco", "m"), ("sign", "cartel", "m"), ("flag", "bandera", "f"),
          ("kite", "cometa", "f"), ("ball", "pelota", "f"), ("toy", "juguete", "m"),
          ("puzzle", "rompecabezas", "m"), ("violin", "violin", "m"), ("painting", "pintura", "f"),
          ("poster", "cartel", "m"), ("jar", "tarro", "m"), ("pot", "olla", "f"),
          ("pan", "sarten", "f"), ("oven", "horno", "m"), ("fridge", "nevera", "f"),
          ("sofa", "sofa", "m"), ("bed", "cama", "f"), ("desk", "escritorio", "m"),
          ("shelf", "estante", "m"), ("drawer", "cajon", "m"), ("helmet", "casco", "m"),
          ("glove", "guante", "m"), ("scarf", "bufanda", "f"), ("belt", "cinturon", "m"),
          ("tractor", "tractor", "m"), ("truck", "camion", "m"), ("airplane", "avion", "m"),
          ("rocket", "cohete", "m"), ("barn", "granero", "m"), ("well", "pozo", "m")]
# (english, spanish masculine singular); feminine: final o -> a, else unchanged
_ADJECTIVES = [("green", "verde"), ("heavy", "pesado"), ("quiet", "tranquilo"), ("bright", "brillante"),
               ("broken", "roto"), ("little", "pequeno"), ("warm", "calido"), ("empty", "vacio"),
               ("strange", "extrano"), ("new", "nuevo"), ("old", "viejo"), ("red", "rojo"),
               ("blue", "azul"), ("yellow", "amarillo"), ("white", "blanco"), ("black", "negro"),
               ("brown", "marron"), ("large", "grande"), ("tiny", "diminuto"), ("clean", "limpio"),
               ("dirty", "sucio"), ("wet", "mojado"), ("dry", "seco"), ("cold", "frio"),
               ("hot", "caliente"), ("soft", "suave"), ("hard", "duro"), ("cheap", "barato"),
               ("expensive", "caro"), ("beautiful", "bonito"), ("ugly", "feo"), ("famous", "famoso"),
               ("secret", "secreto"), ("wooden", "de madera"), ("golden", "dorado"),
               ("silver", "plateado"), ("round", "redondo"), ("square", "cuadrado"),
               ("narrow", "estrecho"), ("wide", "ancho"), ("tall", "alto"), ("short", "corto"),
               ("long", "largo"), ("modern", "moderno"), ("ancient", "antiguo"), ("simple", "sencillo"),
               ("useful", "util"), ("dangerous", "peligroso"), ("lovely", "precioso"), ("plain", "sencillo")]
_PLACES = [("near the station", "cerca de la estacion"), ("in the morning", "por la manana"),
           ("after dinner", "despues de la cena"), ("by the river", "junto al rio"),
           ("before the storm", "antes de la tormenta"), ("at the market", "en el mercado"),
           ("under the bridge", "debajo del puente"), ("on the hill", "en la colina"),
           ("last winter", "el invierno pasado"), ("in the city", "en la ciudad"),
           ("behind the school", "detras de la escuela"), ("at the airport", "en el aeropuerto"),
           ("during the party", "durante la fiesta"), ("next to the church", "al lado de la iglesia"),
           ("on sunday", "el domingo"), ("last summer", "el verano pasado"),
           ("in the garden", "en el jardin"), ("at the beach", "en la playa"),
           ("after the concert", "despues del concierto"), ("inside the museum", "dentro del museo"),
           ("across the street", "al otro lado de la calle"), ("at midnight", "a medianoche"),
           ("in the village", "en el pueblo"), ("near the harbor", "cerca del puerto")]


def _adjective(es: str, gender: str) -> str:
    if gender == "f" and es.endswith("o"):
        return es[:-1] + "a"
    return es


def _noun_phrase(rng) -> tuple[str, str]:
    a_en, a_es = _pick(rng, _ADJECTIVES)
    n_en, n_es, g = _pick(rng, _NOUNS)
    return f"the {a_en} {n_en}", f"{'la' if g == 'f' else 'el'} {n_es} {_adjective(a_es, g)}"


def _sentences(rng) -> Sentence:
    s_en, s_es = _pick(rng, _SUBJECTS)
    v_en, v_es = _pick(rng, _VERBS)
    o_en, o_es = _noun_phrase(rng)
    en, es = f"{s_en} {v_en} {o_en}", f"{s_es} {v_es} {o_es}"
    if rng.random() < 0.6:
        p_en, p_es = _pick(rng, _PLACES)
        en, es = f"{en} {p_en}", f"{es} {p_es}"
    return Sentence("sentences", en, es)


GENERATORS = {"numbers": _numbers, "dates": _dates, "times": _times, "commands": _commands,
              "sentences": _sentences}
# Share of each kind in the general (ASR / ST) corpora: plain sentences carry most of the vocabulary.
MIX = {"numbers": 0.15, "dates": 0.1, "times": 0.1, "commands": 0.2, "sentences": 0.45}


def _contract(spanish: str) -> str:
    """Spanish's two obligatory contractions: de el -> del, a el -> al."""
    return re.sub(r"\ba el\b", "al", re.sub(r"\bde el\b", "del", spanish))


def sentence(rng: np.random.Generator, kinds: dict[str, float] = MIX) -> Sentence:
    names = list(kinds)
    p = np.array([kinds[k] for k in names], dtype=float)
    kind = names[int(rng.choice(len(names), p=p / p.sum()))]
    s = GENERATORS[kind](rng)
    return Sentence(s.kind, s.english, _contract(s.spanish), s.intent)


def vocabulary() -> set[str]:
    """Every English word the grammar can produce (from the word lists, not from samples)."""
    words: set[str] = set()

    def add(*texts):
        for t in texts:
            words.update(t.replace("{n}", "").replace("{d}", "").replace("{t}", "").split())

    add(*_EN_UNITS, *_EN_TENS, "hundred", "thousand", "oh", *_ORDINALS, "thirtieth")
    for table in (_NUMBER_CARRIERS, _DIGIT_CARRIERS, _DATE_CARRIERS, _TIME_CARRIERS, _MONTHS,
                  _PARTS_OF_DAY, _DEVICES, _ROOMS, _GENRES, _CITIES, _FOODS, _CHORES, _DAYS, _LISTS,
                  _ITEMS, _SUBJECTS, _VERBS, _ADJECTIVES, _PLACES):
        add(*(row[0] for row in table))
    add(*(n[0] for n in _NOUNS), *_NAMES, "the")
    rng = np.random.default_rng(0)
    for intent in INTENTS:  # command templates: sample until no new word appears for a while
        for _ in range(200):
            add(_commands_of(rng, intent)[0])
    return words
